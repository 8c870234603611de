"""Train SAEs with sae-lens' own trainer on a stream of activation batches.

Used to build the bundled zoo, the tiny SAEs of the test suite and the ground-truth
benchmark. Training itself is sae-lens' ``SAETrainer``; this module only builds the
training config for an architecture, feeds it batches and saves the inference SAE.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ARCHITECTURES = ("topk", "batchtopk", "standard", "jumprelu", "gated")


@dataclass
class TrainRecipe:
    """Architecture, width, sparsity setting and optimiser settings of one SAE."""

    architecture: str
    d_in: int
    d_sae: int
    sparsity: dict[str, Any] = field(default_factory=dict)
    lr: float = 5e-4
    batch_size: int = 1024
    total_tokens: int = 1_000_000
    seed: int = 0
    normalize: bool = True
    warmup_steps: int = 50
    decay_fraction: float = 0.2
    dead_feature_window: int = 200

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def shuffled_batches(data: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Float32 batches of rows in a fresh seeded order each epoch, without end."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(data.shape[0], generator=generator)
        for lo in range(0, data.shape[0] - batch_size + 1, batch_size):
            yield data[order[lo : lo + batch_size]].to(torch.float32)


def training_config(recipe: TrainRecipe, metadata: dict[str, Any] | None = None) -> Any:
    """The sae-lens TrainingSAEConfig for a recipe."""
    from sae_lens import (
        BatchTopKTrainingSAEConfig,
        GatedTrainingSAEConfig,
        JumpReLUTrainingSAEConfig,
        StandardTrainingSAEConfig,
        TopKTrainingSAEConfig,
    )

    classes = {
        "topk": TopKTrainingSAEConfig,
        "batchtopk": BatchTopKTrainingSAEConfig,
        "standard": StandardTrainingSAEConfig,
        "jumprelu": JumpReLUTrainingSAEConfig,
        "gated": GatedTrainingSAEConfig,
    }
    if recipe.architecture not in classes:
        raise ValueError(
            f"unknown architecture {recipe.architecture!r}; use one of {ARCHITECTURES}"
        )
    cfg = classes[recipe.architecture](
        d_in=recipe.d_in,
        d_sae=recipe.d_sae,
        normalize_activations="expected_average_only_in" if recipe.normalize else "none",
        **recipe.sparsity,
    )
    for key, value in (metadata or {}).items():
        setattr(cfg.metadata, key, value)
    return cfg


def train_sae(
    recipe: TrainRecipe,
    batches: Iterator[torch.Tensor],
    *,
    metadata: dict[str, Any] | None = None,
    device: str = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """Train one SAE on ``recipe.total_tokens`` tokens from ``batches``.

    ``batches`` must not run dry: the trainer first draws up to 100 batches to estimate
    the activation norm. Returns the trained sae-lens TrainingSAE (activation scaling
    folded in) and a summary: steps, seconds, and the trainer's final L0 / dead counts.
    """
    from sae_lens import SAETrainer
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.sae import TrainingSAE

    torch.manual_seed(recipe.seed)
    cfg = training_config(recipe, metadata)
    sae = TrainingSAE.get_sae_class_for_architecture(recipe.architecture)(cfg).to(device)
    steps = recipe.total_tokens // recipe.batch_size
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * recipe.batch_size,
        train_batch_size_samples=recipe.batch_size,
        lr=recipe.lr,
        lr_warm_up_steps=min(recipe.warmup_steps, steps // 10),
        lr_decay_steps=int(steps * recipe.decay_fraction),
        lr_end=recipe.lr / 10,
        device=device,
        dead_feature_window=recipe.dead_feature_window,
        feature_sampling_window=max(recipe.dead_feature_window, 100),
        n_batches_for_norm_estimate=min(100, steps),
        logger=LoggingConfig(log_to_wandb=False),
    )

    def provider() -> Iterator[torch.Tensor]:
        for batch in batches:
            yield batch.to(device=device, dtype=torch.float32)

    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=provider())
    start = time.perf_counter()
    trained = trainer.fit()
    summary = {
        "steps": steps,
        "tokens_seen": steps * recipe.batch_size,
        "seconds": time.perf_counter() - start,
        "trainer_final_l0": getattr(trained.cfg.metadata, "l0", None),
        "trainer_dead_latents": getattr(trained.cfg.metadata, "num_dead_features", None),
    }
    return trained, summary


def save_inference(
    trained: Any,
    path: Path,
    dtype: torch.dtype = torch.float32,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save the inference form of a trained SAE in sae-lens format, cast to ``dtype``."""
    from safetensors.torch import load_file, save_file

    path.mkdir(parents=True, exist_ok=True)
    weights, cfg_path = trained.save_inference_model(path)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_file(weights).items()}
    save_file(state, weights)
    cfg = json.loads(Path(cfg_path).read_text())
    cfg["dtype"] = str(dtype).removeprefix("torch.")
    cfg.setdefault("metadata", {}).update(extra or {})
    Path(cfg_path).write_text(json.dumps(cfg, indent=1, sort_keys=True))
    return path
