"""Probing metrics for the SAEs of one (model, hook): shared task data, per-SAE features.

Task texts are run to the hook once per (model, hook, task) (see
:mod:`interpscore.task_activations`); the pooled model activations, the splits and the
model-space class probes are shared by every SAE. Per SAE only the encode of the task
tokens and the probe fits remain. Bootstrap intervals resample test examples per task,
with the same resamples for an SAE and its controls (paired).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpscore.hooked import HookedLM, HookSite
from interpscore.metrics import probing
from interpscore.metrics.stats import resample_weights
from interpscore.task_activations import TaskActivations, collect, pooled_latents
from interpscore.tasks import DEFAULT_TASKS, ProbingTask, Split, load_tasks
from interpscore.values import MetricValue

log = logging.getLogger("interpscore.probing")

K_VALUES = (1, 2, 5, 10, 20, 50)
TPP_NS = (2, 5, 10, 20, 50, 100, 500)
PROBING_METRICS = ("sparse_probing", *(f"sparse_probing_k{k}" for k in K_VALUES))
TPP_METRICS = ("tpp", "tpp_chance_anchored", *(f"tpp_saebench@{n}" for n in TPP_NS))


@dataclass(frozen=True)
class ProbingSettings:
    """What the probing metrics read and how."""

    tasks: tuple[str, ...] = (DEFAULT_TASKS,)
    examples: int = 600
    max_tokens: int = 128
    tpp_concept: str = "vader_sentiment"
    tpp_n: int = 20
    seed: int = 0
    bootstrap: int = 1000
    batch_size: int = 32
    show_progress: bool = True


@dataclass
class TaskData:
    """One task on one (model, hook): examples, split, activations, model-space probes."""

    index: int
    task: ProbingTask
    split: Split
    acts: TaskActivations
    x_model: np.ndarray
    y: np.ndarray
    class_probes: list[probing.ClassProbe] | None = None
    weights: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.task.classes)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.task.source,
            "classes": list(self.task.classes),
            "split_sizes": self.split.sizes(),
            "grouped_split": self.task.groups is not None,
            "tokens": self.acts.n_tokens,
        }


@dataclass
class SAEFeatures:
    """Pooled latents of one SAE on every task, and its decoder."""

    latents: dict[str, np.ndarray]
    w_dec: np.ndarray
    seconds: float
    dense_probes: dict[str, Any] = field(default_factory=dict)


class ProbingSuite:
    """Task data for one (model, hook), and the probing metrics of any SAE on it."""

    def __init__(self, lm: HookedLM, site: HookSite, settings: ProbingSettings) -> None:
        self.lm = lm
        self.site = site
        self.settings = settings
        self._tasks: list[TaskData] | None = None
        self._features: dict[str, SAEFeatures] = {}
        self.seconds = 0.0

    # Shared task data ----------------------------------------------------------------

    @property
    def tasks(self) -> list[TaskData]:
        if self._tasks is None:
            self._tasks = []
            s = self.settings
            for index, task in enumerate(load_tasks(list(s.tasks))):
                subset = task.balanced_subset(s.examples, s.seed)
                split = subset.split(s.seed)
                acts = collect(
                    self.lm, self.site, subset, s.max_tokens, s.batch_size, s.show_progress
                )
                self.seconds += acts.seconds
                data = TaskData(index, subset, split, acts, acts.pooled(), subset.y)
                if s.bootstrap > 0:
                    data.weights = resample_weights(
                        len(split.test), s.bootstrap, s.seed + 7919 * (index + 1)
                    )
                self._tasks.append(data)
        return self._tasks

    def task(self, name: str) -> TaskData:
        for data in self.tasks:
            if data.task.name == name:
                return data
        raise KeyError(name)

    def class_probes(self, data: TaskData) -> list[probing.ClassProbe]:
        if data.class_probes is None:
            s = data.split
            data.class_probes = probing.train_class_probes(
                data.x_model, data.y, s.train, s.val, s.test, data.n_classes, self.settings.seed
            )
        return data.class_probes

    def info(self) -> dict[str, Any]:
        return {d.task.name: d.describe() for d in self.tasks}

    # Per-SAE features ----------------------------------------------------------------

    def features(self, key: str, sae: torch.nn.Module) -> SAEFeatures:
        if key not in self._features:
            tasks = self.tasks
            start = time.perf_counter()
            latents = {d.task.name: pooled_latents(sae, d.acts) for d in tasks}
            w_dec = sae.W_dec.detach().to(torch.float64).cpu().numpy()
            self._features[key] = SAEFeatures(latents, w_dec, time.perf_counter() - start)
        return self._features[key]

    def _dense(self, feats: SAEFeatures, data: TaskData) -> Any:
        name = data.task.name
        if name not in feats.dense_probes:
            x, s = feats.latents[name], data.split
            feats.dense_probes[name] = probing.fit_logistic(
                x[s.train], data.y[s.train], balanced=True
            )
        return feats.dense_probes[name]

    # Metrics -------------------------------------------------------------------------

    def _combine(
        self, per_task: dict[str, tuple[float, np.ndarray | None]], details: dict[str, Any]
    ) -> MetricValue:
        values = [v for v, _ in per_task.values()]
        reps = [r for _, r in per_task.values()]
        replicates = np.mean(reps, axis=0) if reps and all(r is not None for r in reps) else None
        return MetricValue(float(np.mean(values)), replicates, unit="example", details=details)

    def sparse_probing(self, key: str, sae: torch.nn.Module) -> MetricValue:
        """Notebook definition: balanced LR on all pooled latents, test AUROC, mean over tasks."""
        feats = self.features(key, sae)
        per_task = {}
        for data in self.tasks:
            x, s = feats.latents[data.task.name], data.split
            proba = self._dense(feats, data).predict_proba(x[s.test])
            value = float(probing.macro_auroc(proba, data.y[s.test]))
            reps = (
                probing.macro_auroc(proba, data.y[s.test], data.weights)
                if data.weights is not None
                else None
            )
            per_task[data.task.name] = (value, reps)
        return self._combine(
            per_task,
            {
                "probing_tasks": [d.task.name for d in self.tasks],
                "probing_per_task_auc": {k: v for k, (v, _) in per_task.items()},
                "tasks": self.info(),
                "pooling": f"mean over ordinary tokens of the first {self.settings.max_tokens} "
                "tokens (BOS excluded)",
                "task_activation_seconds": round(self.seconds, 2),
                "sae_encode_seconds": round(feats.seconds, 2),
                "probes_converged": all(
                    getattr(feats.dense_probes[d.task.name], "converged_", True) for d in self.tasks
                ),
            },
        )

    def _k_sparse(self, x: np.ndarray, data: TaskData, k: int) -> list[probing.KSparseFit]:
        s, seed = data.split, self.settings.seed
        test_sets = dict(probing.binary_problems(data.y[s.test], data.n_classes, seed + 500))
        fits = []
        for positive, tr in probing.binary_problems(data.y[s.train], data.n_classes, seed):
            te = test_sets[positive]
            fit = probing.k_sparse_probe(
                x[s.train][tr],
                data.y[s.train][tr] == positive,
                x[s.test][te],
                data.y[s.test][te] == positive,
                k,
            )
            fits.append((fit, te))
        return fits

    @staticmethod
    def _mean(fits: list, what: str, weights: np.ndarray | None) -> np.ndarray:
        return np.mean(
            [getattr(fit, what)(None if weights is None else weights[..., te]) for fit, te in fits],
            axis=0,
        )

    def llm_k_sparse(self, k: int) -> dict[str, dict[str, float]]:
        """The same k-sparse probe on the model's pooled activations (reference ceiling)."""
        out = {}
        for data in self.tasks:
            fits = self._k_sparse(data.x_model, data, k)
            out[data.task.name] = {
                "accuracy": float(self._mean(fits, "accuracy", None)),
                "auroc": float(self._mean(fits, "auroc", None)),
            }
        return out

    def k_sparse_probing(self, key: str, sae: torch.nn.Module, k: int) -> MetricValue:
        """SAEBench definition: top-k latents by train mean difference, LR, test accuracy."""
        feats = self.features(key, sae)
        per_task, aurocs = {}, {}
        for data in self.tasks:
            fits = self._k_sparse(feats.latents[data.task.name], data, k)
            reps = self._mean(fits, "accuracy", data.weights) if data.weights is not None else None
            per_task[data.task.name] = (float(self._mean(fits, "accuracy", None)), reps)
            aurocs[data.task.name] = float(self._mean(fits, "auroc", None))
        llm = self.llm_k_sparse(k)
        return self._combine(
            per_task,
            {
                "k": k,
                "per_task_accuracy": {k_: v for k_, (v, _) in per_task.items()},
                "per_task_auroc": aurocs,
                "auroc": float(np.mean(list(aurocs.values()))),
                "llm_reference": llm,
                "llm_reference_accuracy": float(np.mean([v["accuracy"] for v in llm.values()])),
            },
        )

    def _concept(self) -> tuple[TaskData, int | None]:
        name, _, label = self.settings.tpp_concept.partition(":")
        data = self.task(name)
        if data.n_classes == 2 and not label:
            return data, None
        if label not in data.task.classes:
            raise ValueError(
                f"--tpp-concept {self.settings.tpp_concept!r}: task {name} has classes "
                f"{', '.join(data.task.classes)}; name one as {name}:CLASS"
            )
        return data, data.task.classes.index(label)

    def tpp(self, key: str, sae: torch.nn.Module) -> tuple[MetricValue, MetricValue]:
        """Notebook TPP and its chance-anchored variant, on the concept task."""
        feats = self.features(key, sae)
        data, positive = self._concept()
        x, s = feats.latents[data.task.name], data.split
        if positive is None:
            clf, y_test = self._dense(feats, data), data.y[s.test]
        else:
            clf = probing.fit_logistic(x[s.train], data.y[s.train] == positive, balanced=True)
            y_test = (data.y[s.test] == positive).astype(np.int64)
        point = probing.tpp_zeroing(clf, x[s.test], y_test, self.settings.tpp_n)
        reps = (
            probing.tpp_zeroing(clf, x[s.test], y_test, self.settings.tpp_n, data.weights)
            if data.weights is not None
            else None
        )
        details = {
            "tpp_concept": self.settings.tpp_concept,
            "tpp_top_features": self.settings.tpp_n,
            "top_latents": point.top_latents,
            "auc_clean": float(point.auc_clean),
            "auc_ablated": float(point.auc_ablated),
            "split_sizes": data.split.sizes(),
        }
        return (
            MetricValue(float(point.tpp), reps.tpp if reps else None, "example", details),
            MetricValue(
                float(point.chance_anchored),
                reps.chance_anchored if reps else None,
                "example",
                details,
            ),
        )

    def values(self, key: str, sae: torch.nn.Module, metric: str) -> dict[str, MetricValue]:
        """The named metric, and any metrics computed with it (keyed by report name)."""
        if metric == "sparse_probing":
            return {metric: self.sparse_probing(key, sae)}
        if metric.startswith("sparse_probing_k"):
            return {
                metric: self.k_sparse_probing(
                    key, sae, int(metric.removeprefix("sparse_probing_k"))
                )
            }
        if metric in ("tpp", "tpp_chance_anchored"):
            plain, anchored = self.tpp(key, sae)
            return {"tpp": plain, "tpp_chance_anchored": anchored}
        if metric.startswith("tpp_saebench@"):
            return {f"tpp_saebench@{n}": v for n, v in self.tpp_saebench(key, sae).items()}
        raise KeyError(f"unknown probing metric {metric!r}")

    def tpp_saebench(self, key: str, sae: torch.nn.Module) -> dict[int, MetricValue]:
        """SAEBench TPP over the multi-class tasks, for every N."""
        feats = self.features(key, sae)
        multi = [d for d in self.tasks if d.n_classes > 2]
        if not multi:
            raise ValueError(
                "SAEBench TPP needs a task with more than two classes among --probing-tasks"
            )
        per_n: dict[int, list[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]]] = {
            n: [] for n in TPP_NS
        }
        for data in multi:
            probes = self.class_probes(data)
            weights = (None, data.weights) if data.weights is not None else (None,)
            result = probing.tpp_saebench(
                probes,
                data.x_model,
                feats.latents[data.task.name],
                feats.w_dec,
                data.y,
                TPP_NS,
                data.split.test,
                weights,
            )
            for n in TPP_NS:
                per_n[n].append((result[n][0], result[n][1] if len(weights) == 2 else None))
        out = {}
        for n, rows in per_n.items():
            replicates = (
                np.mean([r["total"] for _, r in rows], axis=0)
                if all(r is not None for _, r in rows)
                else None
            )
            out[n] = MetricValue(
                float(np.mean([p["total"] for p, _ in rows])),
                replicates,
                "example",
                {
                    "n": n,
                    "tasks": [d.task.name for d in multi],
                    "intended": float(np.mean([p["intended"] for p, _ in rows])),
                    "unintended": float(np.mean([p["unintended"] for p, _ in rows])),
                    "probe_c": {d.task.name: [p.c for p in self.class_probes(d)] for d in multi},
                },
            )
        return out
