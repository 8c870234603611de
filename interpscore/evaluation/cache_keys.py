"""Content hashes that key the value cache: models, token ids, modules, library versions.

A key names everything that changes a stored value: what the model *is* (a hash of its
files, or of its loaded weights when it has no local files), the exact token ids read,
the hook, the dtype and device kind, and the versions of the libraries that compute it.
File hashes are kept per process by (path, size, mtime), so a session hashes a file once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from interpscore.subjects.models import ALIASES, ModelRef, alias_gguf_path, sha256_file

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _FILE_HASHES:
        _FILE_HASHES[memo] = sha256_file(path)
    return _FILE_HASHES[memo]


def tensor_hash(*tensors: torch.Tensor | np.ndarray) -> str:
    """sha256 over the dtypes, shapes and bytes of tensors (on any device)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().contiguous() if isinstance(tensor, torch.Tensor) else tensor
        digest.update(f"{array.dtype}{tuple(array.shape)}".encode())
        if isinstance(array, torch.Tensor):
            array = array.view(torch.uint8) if array.numel() else array
            digest.update(array.numpy().tobytes())
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def module_hash(module: nn.Module) -> str:
    """sha256 of a module's class and its parameters and buffers (by name)."""
    digest = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}".encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor_hash(tensor).encode())
    return digest.hexdigest()


def model_hash(ref: ModelRef, model: nn.Module) -> str:
    """The content of a model: its GGUF file, its directory's files, or (a hub id) its
    loaded weights; a control variant adds its name and seed."""
    base = ref.base
    path = Path(base).expanduser()
    if base in ALIASES:
        content = "gguf:" + _file_hash(alias_gguf_path(ALIASES[base]))
    elif path.suffix == ".gguf" and path.is_file():
        content = "gguf:" + _file_hash(path)
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        content = (
            "dir:"
            + hashlib.sha256(
                "".join(f"{p.name}:{_file_hash(p)};" for p in files).encode()
            ).hexdigest()
        )
    else:
        content = "weights:" + module_hash(model)
    if ref.variant is not None:
        content += f"::{ref.variant}@{ref.seed}"
    return content


@cache
def versions() -> dict[str, str]:
    """Versions of the libraries whose code computes cached values."""
    out = {}
    for name in ("interpscore", "torch", "transformers", "sae-lens", "scikit-learn", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "none"
    return out


def device_kind(device: torch.device | str) -> str:
    """``cpu``, ``cuda`` or ``mps`` (and the GPU's name): what changes floating-point bits."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def base_key(
    ref: ModelRef, model: nn.Module, dtype: str, device: torch.device | str
) -> dict[str, Any]:
    """The fields every entry about one model shares."""
    return {
        "model": model_hash(ref, model),
        "dtype": dtype,
        "device": device_kind(device),
        "versions": versions(),
    }
