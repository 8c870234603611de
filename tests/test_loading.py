"""SAE specs and loading: every form, and a clear one-line error for each bad input."""

from __future__ import annotations

import json
import shutil

import pytest
import subjects
import torch
from safetensors.torch import load_file, save_file

from interpscore.errors import SpecError
from interpscore.evaluation.evaluator import Evaluator
from interpscore.evaluation.settings import RunSettings
from interpscore.subjects.loading import load_sae, parse_sae_spec, unique_ids


def test_local_saelens_directory(tiny_saes):
    loaded = load_sae(str(tiny_saes["topk"]))
    assert loaded.architecture == "topk"
    assert loaded.k == 8
    assert (loaded.d_in, loaded.d_sae) == (64, 256)
    assert loaded.hook_name == subjects.HOOK
    assert loaded.layer == 1
    assert loaded.sae.W_enc.dtype == torch.float32


def test_explicit_test_id(tiny_saes):
    assert parse_sae_spec(f"mine={tiny_saes['topk']}").id == "mine"


def test_duplicate_ids_are_made_unique(tiny_saes):
    specs = unique_ids([parse_sae_spec(str(tiny_saes["topk"]))] * 3)
    assert [s.id for s in specs] == ["topk", "topk-2", "topk-3"]


def test_hub_and_release_forms_parse():
    spec = parse_sae_spec("someone/some-saes/layer_3/width_16k@abc123")
    assert (spec.kind, spec.location, spec.path, spec.revision) == (
        "hub",
        "someone/some-saes",
        "layer_3/width_16k",
        "abc123",
    )
    release = parse_sae_spec("gpt2-small-res-jb/blocks.8.hook_resid_pre")
    assert (release.kind, release.location, release.path) == (
        "saelens-release",
        "gpt2-small-res-jb",
        "blocks.8.hook_resid_pre",
    )


def test_dictionary_learning_directory_matches_the_same_weights(tmp_path, tiny_saes):
    ref = load_sae(str(tiny_saes["identity"]))
    ae = {
        "encoder.weight": ref.sae.W_enc.T.contiguous(),
        "encoder.bias": ref.sae.b_enc.clone(),
        "decoder.weight": ref.sae.W_dec.T.contiguous(),
        "bias": ref.sae.b_dec.clone(),
    }
    folder = tmp_path / "dl"
    folder.mkdir()
    torch.save(ae, folder / "ae.pt")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "trainer": {
                    "dict_class": "AutoEncoder",
                    "activation_dim": 64,
                    "dict_size": 128,
                    "layer": 1,
                    "lm_name": "tiny",
                    "submodule_name": "resid_post_layer_1",
                }
            }
        )
    )
    loaded = load_sae(str(folder))
    assert loaded.architecture == "standard"
    assert loaded.hook_name == "blocks.1.hook_resid_post"
    x = torch.randn(5, 64)
    torch.testing.assert_close(loaded.sae.decode(loaded.sae.encode(x)), x, atol=1e-5, rtol=0)


def test_pickled_objects_in_ae_pt_are_refused(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"encoder.weight": torch.zeros(2, 2), "payload": object()}, folder / "ae.pt")
    (folder / "config.json").write_text(
        json.dumps(
            {
                "trainer": {
                    "dict_class": "AutoEncoder",
                    "activation_dim": 2,
                    "dict_size": 2,
                    "layer": 0,
                }
            }
        )
    )
    with pytest.raises(SpecError, match="plain tensors"):
        load_sae(str(folder))


def _copy(src, tmp_path, name="copy"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("./no/such/dir", "does not exist"),
        ("not a spec at all", "is not a directory, a sae-lens RELEASE/SAE_ID"),
    ],
)
def test_unknown_specs(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_sae_spec(spec)


def test_directory_without_sae_files(tmp_path):
    with pytest.raises(SpecError, match=r"holds neither cfg\.json"):
        parse_sae_spec(str(tmp_path))


def test_cfg_missing_a_field(tmp_path, tiny_saes):
    folder = _copy(tiny_saes["topk"], tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["d_sae"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="missing field\\(s\\) d_sae"):
        load_sae(str(folder))


def test_cfg_without_hook(tmp_path, tiny_saes):
    folder = _copy(tiny_saes["topk"], tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["metadata"]["hook_name"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match="no hook_name"):
        load_sae(str(folder))


def test_nan_weights_are_refused(tmp_path, tiny_saes):
    folder = _copy(tiny_saes["topk"], tmp_path)
    weights = load_file(folder / "sae_weights.safetensors")
    weights["W_dec"][0, 0] = float("nan")
    save_file(weights, folder / "sae_weights.safetensors")
    with pytest.raises(SpecError, match="NaN or inf values in W_dec"):
        load_sae(str(folder))


def test_hub_offline_error_names_the_fix(offline_hub):
    with pytest.raises(SpecError, match="pass the local directory"):
        load_sae("nobody-here/no-such-saes@main")


def test_width_mismatch_fails_only_that_sae(tmp_path, tiny_llama, tiny_corpus, tiny_saes):
    from sae_lens import TopKSAE, TopKSAEConfig

    wrong = subjects.save_sae(
        TopKSAE(TopKSAEConfig(d_in=32, d_sae=16, k=4)), tmp_path / "wrong", str(tiny_llama)
    )
    specs = [parse_sae_spec(str(wrong)), parse_sae_spec(str(tiny_saes["topk"]))]
    evaluator = Evaluator(
        RunSettings(
            dataset=str(tiny_corpus), tokens=512, context_len=64, bootstrap=0, show_progress=False
        ),
        specs,
    )
    with pytest.raises(
        SpecError, match=r"has d_in=32, but blocks\.1\.hook_resid_post .* has width 64"
    ):
        evaluator.value("wrong", "l0")
    with pytest.raises(SpecError, match="has d_in=32"):
        evaluator.value("wrong", "sparse_probing")  # every family, not only the pass
    assert evaluator.value("topk", "l0").value == pytest.approx(8.0)


def _fake_hub_cache(root, repo_id, files):
    """Lay files out as huggingface_hub's cache does for one commit of a repo."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for relative, source in files.items():
        target = snapshot / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return commit


def test_hub_spec_loads_offline_from_the_hf_cache(offline_hub, tiny_saes):
    """The real hub path (snapshot_download), served from a populated cache offline."""
    _fake_hub_cache(
        offline_hub,
        "someone/tiny-saes",
        {
            "layer1/cfg.json": tiny_saes["topk"] / "cfg.json",
            "layer1/sae_weights.safetensors": tiny_saes["topk"] / "sae_weights.safetensors",
        },
    )
    loaded = load_sae("someone/tiny-saes/layer1@main")
    assert loaded.id == "someone-tiny-saes-layer1"
    assert loaded.source == "someone/tiny-saes/layer1@main"
    assert loaded.architecture == "topk"
    assert loaded.d_sae == 256
