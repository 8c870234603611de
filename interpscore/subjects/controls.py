"""Randomized controls: model variants after Heap et al. (2025) and random-init SAEs.

Model variants are built deterministically from the trained weights and a seed, so
they need no storage of their own:

* ``rerandomized-excl-emb``: every parameter tensor except the embeddings is resampled
  from a Gaussian with that tensor's own mean and standard deviation;
* ``rerandomized-incl-emb``: the same, embeddings included (a tied unembedding follows);
* ``noise-embeddings``: the trained model, with the input embeddings replaced by
  N(0, 1) noise, drawn per sequence from a seed and the sequence's tokens (so the
  noise does not depend on how sequences are batched).
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

import torch
from torch import nn

from interpscore.errors import SpecError

_POSITION_EMBEDDING_NAMES = ("wpe", "embed_positions")


def _embedding_parameter_ids(model: nn.Module) -> set[int]:
    ids = {id(p) for p in model.get_input_embeddings().parameters()}
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _POSITION_EMBEDDING_NAMES:
            ids.update(id(p) for p in module.parameters())
    return ids


@torch.no_grad()
def rerandomize_(model: nn.Module, seed: int, include_embeddings: bool) -> list[str]:
    """Resample parameters in place from N(mean, std) of each tensor; return their names.

    Tensors with fewer than two elements are left alone (their std is undefined).
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    skip = set() if include_embeddings else _embedding_parameter_ids(model)
    resampled = []
    for name, param in model.named_parameters():
        if id(param) in skip or param.numel() < 2:
            continue
        data = param.detach().to(torch.float64)
        mean, std = data.mean(), data.std()
        sample = torch.randn(param.shape, generator=generator, dtype=torch.float64)
        param.copy_((sample * std + mean).to(param.dtype))
        resampled.append(name)
    return resampled


def _noise_hook(seed: int):
    def hook(_module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        ids = args[0]
        noise = torch.empty_like(output)
        for row in range(ids.shape[0]):
            row_seed = (seed * 1_000_003 + zlib.crc32(ids[row].cpu().numpy().tobytes())) % 2**63
            generator = torch.Generator(device="cpu").manual_seed(row_seed)
            noise[row] = torch.randn(output.shape[1:], generator=generator).to(output)
        return noise

    return hook


def apply_model_variant(model: nn.Module, variant: str, seed: int) -> None:
    """Turn a trained model into one of the named controls, in place."""
    if variant == "rerandomized-excl-emb":
        rerandomize_(model, seed, include_embeddings=False)
    elif variant == "rerandomized-incl-emb":
        rerandomize_(model, seed, include_embeddings=True)
    elif variant == "noise-embeddings":
        model.get_input_embeddings().register_forward_hook(_noise_hook(seed))
    else:
        raise SpecError(
            f"Unknown model variant {variant!r}.", "see interpscore.subjects.models.VARIANTS."
        )


def random_init_like(sae: nn.Module, seed: int) -> nn.Module:
    """A freshly initialised SAE of the same class, config and dtype (a per-SAE control)."""
    cfg = copy.deepcopy(sae.cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        control = type(sae)(cfg)
    return control.to(dtype=next(sae.parameters()).dtype, device=next(sae.parameters()).device)
