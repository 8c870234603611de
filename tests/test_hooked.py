"""Hook points on plain transformers models: capture, run-to-hook and run-from-hook."""

from __future__ import annotations

import pytest
import torch

from interpscore.errors import SpecError
from interpscore.subjects.models import load_model

HOOKS = [
    "blocks.0.hook_resid_pre",
    "blocks.0.hook_resid_post",
    "blocks.1.hook_resid_pre",
    "blocks.1.hook_resid_post",
    "blocks.0.hook_mlp_out",
    "blocks.1.hook_attn_out",
]


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request, tiny_llama, tiny_gpt2):
    return load_model(str(tiny_llama if request.param == "llama" else tiny_gpt2))


@pytest.mark.parametrize("hook", HOOKS)
def test_running_from_the_hook_with_clean_activations_reproduces_the_logits(lm, hook):
    ids = torch.randint(4, 500, (2, 24), generator=torch.Generator().manual_seed(0))
    site = lm.site(hook)
    acts, logits = lm.clean_pass(ids, site)
    assert torch.equal(lm.activations(ids, site), acts)
    torch.testing.assert_close(lm.logits_from(ids, site, acts), logits, rtol=0, atol=1e-5)
    # last_only unembeds the last position alone, with the same values
    _, last = lm.clean_pass(ids, site, last_only=True)
    assert last.shape == (2, 1, logits.shape[-1])
    torch.testing.assert_close(last, logits[:, -1:], rtol=0, atol=1e-5)
    tail = lm.logits_from(ids, site, acts, last_only=True)
    torch.testing.assert_close(tail, logits[:, -1:], rtol=0, atol=1e-5)


def test_the_last_layers_output_gives_the_logits_without_any_layer(lm):
    """What a warm value cache relies on: the clean logits again from the stored output of
    the last layer, through the final norm and the unembedding only, bit for bit."""
    ids = torch.randint(4, 500, (2, 24), generator=torch.Generator().manual_seed(2))
    site = lm.site("blocks.0.hook_resid_post")
    acts, logits = lm.clean_pass(ids, site)
    with_acts, final, with_logits = lm.clean_pass_with_final(ids, site)
    assert torch.equal(with_acts, acts)
    assert torch.equal(with_logits, logits)
    calls = []
    handles = [layer.register_forward_hook(lambda *_: calls.append(1)) for layer in lm.layers]
    try:
        again = lm.logits_from(ids, lm.final_site, final)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []
    assert torch.equal(again, logits)


def test_resid_post_matches_hidden_states(lm):
    ids = torch.randint(4, 500, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        hidden = lm.model(input_ids=ids, output_hidden_states=True).hidden_states
    # hidden_states[i] is the input of layer i (the last one is after the final norm).
    torch.testing.assert_close(lm.activations(ids, lm.site("blocks.0.hook_resid_post")), hidden[1])
    torch.testing.assert_close(lm.activations(ids, lm.site("blocks.1.hook_resid_pre")), hidden[1])


def test_tail_run_skips_the_layers_before_the_hook(lm):
    calls = []
    handle = lm.layers[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        ids = torch.randint(4, 500, (1, 8))
        site = lm.site("blocks.0.hook_resid_post")
        acts = lm.activations(ids, site)
        calls.clear()
        lm.logits_from(ids, site, acts)
    finally:
        handle.remove()
    assert calls == []
    assert len(lm.layers) == 2  # the layer list is restored


def test_replaced_activations_change_the_output(lm):
    ids = torch.randint(4, 500, (1, 8))
    site = lm.site("blocks.0.hook_resid_post")
    acts, logits = lm.clean_pass(ids, site)
    assert not torch.allclose(lm.logits_from(ids, site, torch.zeros_like(acts)), logits)


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("blocks.5.hook_resid_post", "has 2 layers. Fix: use a layer from 0 to 1"),
        ("blocks.1.hook_resid_mid", "Unknown hook"),
        ("model.embed_tokens", "Unknown hook"),
    ],
)
def test_bad_hooks_name_the_valid_range(lm, hook, message):
    with pytest.raises(SpecError, match=message):
        lm.site(hook)


def test_module_path_hooks_are_accepted(tiny_llama):
    lm = load_model(str(tiny_llama))
    assert lm.site("model.layers.1").name == "blocks.1.hook_resid_post"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_model_gives_float32_outputs_close_to_float32(tiny_llama, dtype):
    full = load_model(str(tiny_llama))
    half = load_model(str(tiny_llama), dtype=dtype)
    assert next(half.model.parameters()).dtype == getattr(torch, dtype)
    frequencies = [b for n, b in half.model.named_buffers() if n.endswith("inv_freq")]
    assert frequencies
    assert all(b.dtype == torch.float32 for b in frequencies)
    ids = torch.randint(4, 500, (2, 16), generator=torch.Generator().manual_seed(0))
    site = half.site("blocks.1.hook_resid_post")
    acts, logits = half.clean_pass(ids, site)
    ref_acts, ref_logits = full.clean_pass(ids, site)
    assert acts.dtype == logits.dtype == torch.float32
    assert not torch.equal(logits, ref_logits)  # it really ran in half precision
    torch.testing.assert_close(acts, ref_acts, rtol=0.05, atol=0.05)
    torch.testing.assert_close(logits, ref_logits, rtol=0.05, atol=0.05)
    tail = half.logits_from(ids, site, ref_acts)
    assert tail.dtype == torch.float32
    torch.testing.assert_close(tail, ref_logits, rtol=0.05, atol=0.05)


def test_unknown_dtype_is_refused(tiny_llama):
    with pytest.raises(SpecError, match="float32, bfloat16, float16"):
        load_model(str(tiny_llama), dtype="float8")
