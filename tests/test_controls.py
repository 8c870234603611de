"""Randomized controls: deterministic model variants and random-init SAEs."""

from __future__ import annotations

import torch

from interpscore.subjects.controls import random_init_like
from interpscore.subjects.loading import load_sae
from interpscore.subjects.models import load_model, parse_model_ref


def test_rerandomized_variants_are_deterministic_and_keep_statistics(tiny_llama):
    base = load_model(str(tiny_llama)).model
    a = load_model(parse_model_ref(f"{tiny_llama}::rerandomized-excl-emb@0")).model
    b = load_model(parse_model_ref(f"{tiny_llama}::rerandomized-excl-emb@0")).model
    c = load_model(parse_model_ref(f"{tiny_llama}::rerandomized-excl-emb@1")).model
    name = "model.layers.0.mlp.up_proj.weight"
    pa, pb, pc, p0 = (dict(m.named_parameters())[name] for m in (a, b, c, base))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)
    assert not torch.equal(pa, p0)
    assert abs(pa.mean() - p0.mean()) < 0.01
    assert abs(pa.std() / p0.std() - 1) < 0.05
    assert torch.equal(a.get_input_embeddings().weight, base.get_input_embeddings().weight)


def test_rerandomized_including_embeddings_changes_them(tiny_llama):
    base = load_model(str(tiny_llama)).model
    model = load_model(parse_model_ref(f"{tiny_llama}::rerandomized-incl-emb@0")).model
    assert not torch.equal(model.get_input_embeddings().weight, base.get_input_embeddings().weight)


def test_noise_embeddings_are_per_sequence_and_independent_of_batching(tiny_llama):
    lm = load_model(parse_model_ref(f"{tiny_llama}::noise-embeddings@0"))
    site = lm.site("blocks.0.hook_resid_post")
    ids = torch.randint(4, 500, (3, 16), generator=torch.Generator().manual_seed(0))
    together = lm.activations(ids, site)
    alone = lm.activations(ids[1:2], site)
    torch.testing.assert_close(together[1:2], alone)
    clean = load_model(str(tiny_llama)).activations(ids, site)
    assert not torch.allclose(together, clean)


def test_random_init_control_has_same_class_and_shape(tiny_saes):
    sae = load_sae(str(tiny_saes["topk"])).sae
    control = random_init_like(sae, seed=0)
    assert type(control) is type(sae)
    assert control.W_enc.shape == sae.W_enc.shape
    assert control.cfg.k == sae.cfg.k
    assert not torch.equal(control.W_enc, sae.W_enc)
    assert torch.equal(random_init_like(sae, seed=0).W_enc, control.W_enc)
