"""Run-level settings: what every family reads (window, seed, device, formula, controls)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Any

import torch

from interpscore.evaluation.cache import DEFAULT_MAX_BYTES, Store, default_dir, parse_size
from interpscore.formula import BUILTIN, DEFAULT_VERSION, Formula, get_formula
from interpscore.settings import (
    checked,
    internal,
    non_negative_int,
    option,
    positive_int,
    to_dict,
)
from interpscore.subjects.data import BUNDLED
from interpscore.subjects.models import DTYPES
from interpscore.subjects.zoo import DEFAULT_MODEL_CONTROLS, parse_model_controls

_DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def device_option(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; CUDA must be there when asked for."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda, cuda:N or auto")
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text} was asked for, but torch sees no CUDA device on this machine "
                f"(torch {torch.__version__}); use --device cpu"
            )
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if text == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError("mps was asked for but is not available; use cpu")
    return text


def context_length(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2, got {text!r}")
    return value


def model_controls_option(text: str) -> str:
    checked(parse_model_controls)(text)
    return text


@dataclass(frozen=True)
class RunSettings:
    """Everything that fixes what a run measures, beside the families' own settings."""

    dataset: str = option(
        BUNDLED,
        "--dataset",
        "Evaluation text: 'bundled', a local .txt/.jsonl/.parquet/.csv file, or a hub "
        "dataset ID[:CONFIG][@SPLIT].",
        metavar="DATASET",
    )
    tokens: int = option(
        8192,
        "--tokens",
        "Token positions in the evaluation window.",
        metavar="N",
        type=positive_int,
    )
    context_len: int = option(
        128,
        "--context-len",
        "Context length of each sequence, BOS included.",
        metavar="N",
        type=context_length,
    )
    batch_size: int = option(
        8, "--batch-size", "Sequences per forward pass.", metavar="N", type=positive_int
    )
    seed: int = option(
        0, "--seed", "Seed for controls, splits and bootstrap resampling.", metavar="N", type=int
    )
    device: str = option(
        "cpu", "--device", "Torch device: cpu, cuda, cuda:N or auto.", type=device_option
    )
    dtype: str = option(
        "float32",
        "--dtype",
        "Language-model weights and activations: float32, bfloat16 or float16. SAEs and "
        "statistics stay in float32.",
        choices=DTYPES,
    )
    model_override: str | None = option(
        None,
        "--model",
        "Override the SAEs' model: an alias (smollm2-135m), a local directory, a .gguf file "
        "or a hub id.",
        metavar="MODEL",
    )
    trust_remote_code: bool = option(
        False,
        "--trust-remote-code",
        "Allow models whose code lives in their hub repo (off by default).",
        action="store_true",
    )
    formula: Formula = option(
        BUILTIN[DEFAULT_VERSION],
        "--formula",
        "InterpScore formula version or a .toml/.json formula file.",
        metavar="VERSION|FILE",
        type=checked(get_formula),
        shown=DEFAULT_VERSION,
    )
    controls: bool = option(
        True,
        "--no-controls",
        "Skip the random-init control evaluated beside every SAE.",
        action="store_false",
    )
    model_controls: str = option(
        DEFAULT_MODEL_CONTROLS,
        "--model-controls",
        "Zoo SAEs trained on randomized transformers to include when --sae is not given: "
        "a comma list of rerandomized-excl-emb, rerandomized-incl-emb, noise-embeddings, or "
        "all / none.",
        metavar="LIST",
        type=model_controls_option,
    )
    control_metrics: str = option(
        "core",
        "--model-control-metrics",
        "Metrics for SAEs on randomized transformers: 'core' (the families that run on "
        "model controls: core metrics and token entropy) or 'all'.",
        choices=("core", "all"),
    )
    bootstrap: int = option(
        1000,
        "--bootstrap",
        "Bootstrap resamples for 95% intervals; 0 turns intervals off.",
        metavar="N",
        type=non_negative_int,
    )
    cache: bool = option(
        True,
        "--no-cache",
        "Recompute everything that does not depend on the SAE under test (hook activations, "
        "random-init controls, …) instead of reusing the on-disk value cache.",
        action="store_false",
    )
    cache_dir: str | None = option(
        None,
        "--cache-dir",
        "Folder of the value cache (default: $INTERPSCORE_VALUE_CACHE, else values/ under "
        "$INTERPSCORE_CACHE or the XDG cache); list or clear it with `interpscore cache`.",
        metavar="DIR",
    )
    cache_max_size: int = option(
        DEFAULT_MAX_BYTES,
        "--cache-max-size",
        "Largest size of the value cache; least recently used entries are evicted beyond it.",
        metavar="SIZE",
        type=checked(parse_size),
        shown="10GB",
    )
    show_progress: bool = internal(True)

    def to_dict(self) -> dict[str, Any]:
        return {**to_dict(self, skip=("formula", *CACHE_FIELDS)), "formula": self.formula.version}

    def value_cache(self) -> Store | None:
        """The value cache this run reads and writes (None with --no-cache)."""
        if not self.cache:
            return None
        return Store(self.cache_dir or default_dir(), self.cache_max_size)


#: Where and whether values are cached: never part of what a run measures, so never in
#: the report's run block.
CACHE_FIELDS = ("cache", "cache_dir", "cache_max_size")
