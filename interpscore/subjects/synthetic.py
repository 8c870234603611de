"""A ground-truth benchmark on synthetic activations with known features (sae-lens synthetic).

N unit feature directions in d dimensions fire sparsely with correlated firing (a Gaussian
copula over Zipf-like firing probabilities); SAEs of several architectures are trained on
the resulting activations with sae-lens' trainer and scored by MMCS and Hungarian-matched
correlation against the true features, plus the core metrics, beside a random-init control
of the same shape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from interpscore.evaluation.cache import Store
from interpscore.evaluation.cache_keys import versions
from interpscore.metrics.core import metric_from_arrays
from interpscore.metrics.ground_truth import matched_correlation, mmcs
from interpscore.subjects.controls import random_init_like
from interpscore.subjects.training import TrainRecipe, train_sae

#: Sparsity settings per architecture, chosen for a true L0 of about 4.
RECIPES: dict[str, dict[str, Any]] = {
    "topk": {"k": 4},
    "batchtopk": {"k": 4},
    "standard": {"l1_coefficient": 0.5},
    "jumprelu": {
        "jumprelu_sparsity_loss_mode": "quadratic",
        "target_l0": 4.0,
        "l0_coefficient": 0.1,
    },
}


GROUND_TRUTH = "ground_truth"


@dataclass(frozen=True)
class SyntheticSettings:
    n_features: int = 64
    hidden_dim: int = 32
    d_sae: int = 64
    training_samples: int = 300_000
    eval_samples: int = 20_000
    batch_size: int = 1024
    lr: float = 3e-3
    seed: int = 0


@dataclass
class SyntheticWorld:
    """The feature dictionary and activation generator of one benchmark run."""

    settings: SyntheticSettings = field(default_factory=SyntheticSettings)
    #: The value cache: each architecture's trained result is kept there and reused (it
    #: depends on the settings, seed and library versions only, never on the run's SAEs).
    store: Store | None = None

    def __post_init__(self) -> None:
        from sae_lens.synthetic import (
            ActivationGenerator,
            FeatureDictionary,
            generate_random_correlation_matrix,
            zipfian_firing_probabilities,
        )

        s = self.settings
        torch.manual_seed(s.seed)
        self.features = FeatureDictionary(
            num_features=s.n_features, hidden_dim=s.hidden_dim, seed=s.seed
        )
        self.generator = ActivationGenerator(
            s.n_features,
            firing_probabilities=zipfian_firing_probabilities(
                s.n_features, exponent=0.5, max_prob=0.3, min_prob=0.02
            ),
            std_firing_magnitudes=0.1,
            mean_firing_magnitudes=1.0,
            correlation_matrix=generate_random_correlation_matrix(s.n_features, seed=s.seed),
        )

    def batches(self, seed: int) -> Iterator[torch.Tensor]:
        torch.manual_seed(seed)
        while True:
            with torch.no_grad():
                batch = self.features(self.generator.sample(self.settings.batch_size))
            yield batch  # outside no_grad: a suspended generator must not hold grad mode off

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature activations, hidden activations) for ``n`` fresh samples."""
        torch.manual_seed(seed)
        with torch.no_grad():
            acts = self.generator.sample(n)
            return acts, self.features(acts)

    def train(self, architecture: str) -> tuple[Any, float]:
        s = self.settings
        recipe = TrainRecipe(
            architecture,
            s.hidden_dim,
            s.d_sae,
            sparsity=dict(RECIPES[architecture]),
            lr=s.lr,
            batch_size=s.batch_size,
            total_tokens=s.training_samples,
            seed=s.seed,
            normalize=False,
            warmup_steps=0,
            decay_fraction=0.0,
        )
        start = time.perf_counter()
        trained, _ = train_sae(recipe, self.batches(s.seed + 1))
        return trained.eval(), time.perf_counter() - start

    def score(self, sae: Any, seed: int) -> dict[str, float]:
        """Feature recovery and core metrics of an SAE on fresh samples."""
        feature_acts, hidden = self.sample(self.settings.eval_samples, seed)
        with torch.no_grad():
            f = sae.encode(hidden)
            x_hat = sae.decode(f)
            w_dec = sae.W_dec.detach().double().numpy()
        truth = self.features.feature_vectors.detach().double().numpy()
        return {
            "mmcs": mmcs(w_dec, truth),
            "matched_correlation": matched_correlation(w_dec, truth),
            "explained_variance": metric_from_arrays("explained_variance", hidden, x_hat),
            "cossim": metric_from_arrays("cossim", hidden, x_hat),
            "l0": metric_from_arrays("l0", hidden, f=f),
            "true_l0": float((feature_acts != 0).sum(-1).float().mean()),
            "dead_fraction": metric_from_arrays("dead_fraction", hidden, f=f),
        }

    def evaluate(self, architecture: str) -> dict[str, Any]:
        """Train one architecture and score it beside its random-init control; a result
        stored in the value cache under the same settings is returned marked ``cached``
        (its ``training_seconds`` are those of the run that trained it)."""
        key = {
            "settings": dict(self.settings.__dict__),
            "architecture": architecture,
            "recipe": RECIPES[architecture],
            "versions": versions(),
        }
        hit = self.store.get(GROUND_TRUTH, key) if self.store is not None else None
        if hit is not None and isinstance(hit.data, dict):
            return {**hit.data, "cached": True}
        result = self._evaluate(architecture)
        if self.store is not None:
            self.store.put(GROUND_TRUTH, key, data=result)
        return result

    def _evaluate(self, architecture: str) -> dict[str, Any]:
        sae, seconds = self.train(architecture)
        eval_seed = self.settings.seed + 2
        return {
            "architecture": architecture,
            "sparsity": RECIPES[architecture],
            **self.score(sae, eval_seed),
            "training_seconds": round(seconds, 2),
            "control": self.score(random_init_like(sae, self.settings.seed).eval(), eval_seed),
            "settings": dict(self.settings.__dict__),
        }
