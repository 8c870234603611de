"""Session fixtures for the harness's own tests: tiny models, a tiny corpus, tiny SAEs.

Everything is built in code and offline: a BPE tokenizer trained on bundled text, 2-layer
Llama and GPT-2 models (d_model 64, random weights), and SAEs with known answers or
trained with sae-lens' SAETrainer on the tiny Llama's activations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import subjects

from interpscore.evaluation.cache import CACHE_DIR_ENV
from interpscore.subjects.training import TrainRecipe, save_inference, shuffled_batches, train_sae

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def value_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty value cache for each test (never the user's)."""
    path = tmp_path_factory.mktemp("value-cache")
    monkeypatch.setenv(CACHE_DIR_ENV, str(path))
    return path


@pytest.fixture
def bench(pytester: pytest.Pytester, tiny_corpus: Path) -> list[str]:
    """A pytester dir holding the real benchmarks/test_core.py, and common arguments."""
    pytester.makepyfile(test_core=(REPO / "benchmarks" / "test_core.py").read_text())
    return [
        f"--dataset={tiny_corpus}",
        "--tokens=1024",
        "--context-len=64",
        "--bootstrap=100",
        "-p",
        "no:randomly",
        "--benchmark-disable",
    ]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_corpus(tiny_root: Path) -> Path:
    """A JSONL corpus of 200 real documents (from the bundled evaluation slice)."""
    return subjects.write_corpus(tiny_root / "corpus.jsonl")


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return subjects.build_tokenizer(subjects.corpus_docs(300))


@pytest.fixture(scope="session")
def tiny_llama(tiny_root: Path, tiny_tokenizer) -> Path:
    """A 2-layer Llama (d_model 64) saved with save_pretrained."""
    return subjects.build_model("llama", tiny_tokenizer, tiny_root / "llama")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_root: Path, tiny_tokenizer) -> Path:
    """A 2-layer GPT-2 (d_model 64) saved with save_pretrained."""
    return subjects.build_model("gpt2", tiny_tokenizer, tiny_root / "gpt2")


@pytest.fixture(scope="session")
def tiny_acts(tiny_llama: Path, tiny_corpus: Path):
    """Activations of the tiny Llama at blocks.1.hook_resid_post on the tiny corpus."""
    return subjects.activations(tiny_llama, tiny_corpus, n_positions=16384)


@pytest.fixture(scope="session")
def tiny_saes(tiny_root: Path, tiny_llama: Path, tiny_acts) -> dict[str, Path]:
    """sae-lens directories on the tiny Llama: trained TopK, identity, zero."""
    recipe = TrainRecipe(
        "topk",
        subjects.D_MODEL,
        256,
        sparsity={"k": 8},
        total_tokens=60_000,
        batch_size=256,
        lr=3e-3,
    )
    trained, _ = train_sae(recipe, shuffled_batches(tiny_acts, 256, seed=0))
    root = tiny_root / "saes"
    model = str(tiny_llama)
    out = {
        "topk": save_inference(
            trained, root / "topk", extra={"model_name": model, "hook_name": subjects.HOOK}
        ),
        "identity": subjects.save_sae(subjects.identity_sae(), root / "identity", model),
        "zero": subjects.save_sae(subjects.zero_sae(), root / "zero", model),
    }
    return out


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Offline mode as HF_HUB_OFFLINE=1 at start-up would give, with an empty hub cache.

    huggingface_hub and datasets read these variables once at import, so the module
    constants are set too. Returns the cache folder.
    """
    import datasets.config
    import huggingface_hub.constants as hub

    cache = tmp_path / "hf-hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    return cache
