"""Probing: the InterpScore notebook's ``sparse_probing`` and SAEBench's k-sparse probing.

Task texts are run to the hook once per (model, hook, task) (see
:mod:`interpscore.subjects.task_activations`); the pooled model activations, the splits
and the model-space class probes are this family's shared state, which the TPP family
reads too. Per SAE only the encode of the task tokens and the probe fits remain.
Bootstrap intervals resample test examples per task, with the same resamples for an SAE
and its controls (paired).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from interpscore.evaluation.cache_keys import tensor_hash
from interpscore.evaluation.control_values import cached_control_values
from interpscore.metrics import probing
from interpscore.metrics.stats import resample_weights
from interpscore.results.records import MetricValue
from interpscore.settings import checked, option, positive_int, to_dict
from interpscore.subjects.task_activations import TaskActivations, collect_cached, pooled_latents
from interpscore.subjects.tasks import BUNDLED_TASKS, ProbingTask, Split, load_tasks, task_specs
from interpscore.suites.base import GroupContext, MetricSpec, SubjectContext, Suite

K_VALUES = (1, 2, 5, 10, 20, 50)
#: Value-cache kind of the model's own probe results on one hook's task data.
REFERENCES = "probing_reference"
UNIT = (0.0, 1.0)


@dataclass(frozen=True)
class ProbingSettings:
    """What the probing metrics (and TPP) read and how."""

    tasks: tuple[str, ...] = option(
        BUNDLED_TASKS,
        "--probing-tasks",
        "Probing tasks (repeatable, or comma-separated names): bundled wordnet_topic, "
        "code_language, vader_sentiment; the notebook's toxicity, sentiment (need the hub); "
        "file:PATH; hf:ID[:CONFIG][@SPLIT]#text=COL,label=COL.",
        metavar="TASKS",
        action="append",
        type=checked(task_specs),
        combine=lambda values: tuple(itertools.chain.from_iterable(values)),
    )
    examples: int = option(
        600,
        "--probe-examples",
        "Examples per probing task, balanced over classes, split 70/10/20 (the notebook "
        "uses 1500).",
        metavar="N",
        type=positive_int,
    )
    max_tokens: int = option(
        128,
        "--probe-max-tokens",
        "Tokens read per probing text, BOS included (SAEBench uses 128, the notebook 256).",
        metavar="N",
        type=positive_int,
    )
    batch_size: int = 32


@dataclass
class TaskData:
    """One task on one (model, hook): examples, split, activations, model-space probes."""

    index: int
    task: ProbingTask
    split: Split
    acts: TaskActivations
    x_model: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None = None
    _class_probes: list[probing.ClassProbe] | None = None

    @property
    def name(self) -> str:
        return self.task.name

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

    def class_probes(self, seed: int) -> list[probing.ClassProbe]:
        """One model-space probe per class (C chosen on validation), fitted once."""
        if self._class_probes is None:
            s = self.split
            self._class_probes = probing.train_class_probes(
                self.x_model, self.y, s.train, s.val, s.test, self.n_classes, seed
            )
        return self._class_probes


@dataclass
class SAEFeatures:
    """Pooled latents of one SAE on every task, and its decoder."""

    latents: dict[str, np.ndarray]
    w_dec: np.ndarray
    seconds: float
    dense_probes: dict[str, Any] = field(default_factory=dict)


class ProbingState:
    """The task data of one (model, hook), and each SAE's pooled latents on it."""

    def __init__(self, group: GroupContext, settings: ProbingSettings) -> None:
        run = group.run
        self.settings = settings
        self.seed = run.seed
        self.tasks: list[TaskData] = []
        self.seconds = 0.0
        self._features: dict[str, SAEFeatures] = {}
        self._cache = group.value_cache()
        self._hook = group.site.name
        self._references: dict[str, Any] | None = None
        self._data_hash: str | None = None
        for index, task in enumerate(load_tasks(list(settings.tasks))):
            subset = task.balanced_subset(settings.examples, run.seed)
            split = subset.split(run.seed)
            acts = collect_cached(
                group.lm,
                group.site,
                subset,
                settings.max_tokens,
                settings.batch_size,
                run.show_progress,
                group.value_cache(),
            )
            self.seconds += acts.seconds
            data = TaskData(index, subset, split, acts, acts.pooled(), subset.y)
            if run.bootstrap > 0:
                data.weights = resample_weights(
                    len(split.test), run.bootstrap, run.seed + 7919 * (index + 1)
                )
            self.tasks.append(data)

    def data_hash(self) -> str:
        """A content hash of every task's activations, labels, splits and resamples: what a
        random-init control's stored values are keyed by."""
        if self._data_hash is None:
            parts = []
            for d in self.tasks:
                split = [d.split.train, d.split.val, d.split.test]
                weights = [] if d.weights is None else [d.weights]
                parts += [d.acts.acts, d.acts.offsets, d.y, *split, *weights]
            self._data_hash = tensor_hash(*parts)
        return self._data_hash

    def task(self, name: str) -> TaskData:
        for data in self.tasks:
            if data.name == name:
                return data
        raise KeyError(name)

    def info(self) -> dict[str, Any]:
        return {d.name: d.describe() for d in self.tasks}

    def features(self, key: str, sae: nn.Module) -> SAEFeatures:
        """Per-text mean latents of an SAE on every task (encoded once per SAE)."""
        if key not in self._features:
            start = time.perf_counter()
            latents = {d.name: pooled_latents(sae, d.acts) for d in self.tasks}
            w_dec = sae.W_dec.detach().to(torch.float64).cpu().numpy()
            self._features[key] = SAEFeatures(latents, w_dec, time.perf_counter() - start)
        return self._features[key]

    def _reference(self, name: str, compute: Callable[[], Any]) -> Any:
        """A number of the model's own probes (the same for every SAE on this hook): fitted
        once per hook, and kept in the value cache under the task data's hash."""
        key = {
            "hook": self._hook,
            "data": self.data_hash(),
            "settings": to_dict(self.settings),
            "seed": self.seed,
        }
        if self._references is None:
            hit = self._cache[0].get(REFERENCES, {**self._cache[1], **key}) if self._cache else None
            self._references = hit.data if hit is not None and isinstance(hit.data, dict) else {}
        if name not in self._references:
            self._references[name] = compute()
            if self._cache:
                self._cache[0].put(REFERENCES, {**self._cache[1], **key}, data=self._references)
        return self._references[name]

    def model_reference(self, data: TaskData, k: int) -> dict[str, float]:
        """The k-sparse probe on the model's own pooled activations."""

        def compute() -> dict[str, float]:
            fits = k_sparse_fits(data.x_model, data, k, self.seed)
            return {
                "accuracy": float(mean_fit(fits, "accuracy", None)),
                "auroc": float(mean_fit(fits, "auroc", None)),
            }

        return self._reference(f"k_sparse/{data.name}/{k}", compute)

    def model_dense_accuracy(self, data: TaskData) -> float:
        """SAEBench's ``llm_test_accuracy`` of a task: a probe on all pooled model
        activations per one-vs-rest problem, mean test accuracy."""

        def compute() -> float:
            s, x, y = data.split, data.x_model, data.y
            problems = [
                dict(probing.binary_problems(y[part], data.n_classes, self.seed + offset))
                for part, offset in ((s.train, 0), (s.val, 300), (s.test, 500))
            ]
            accuracies = []
            for positive, tr in problems[0].items():
                va, te = problems[1][positive], problems[2][positive]
                accuracies.append(
                    probing.dense_probe_accuracy(
                        x[s.train][tr],
                        y[s.train][tr] == positive,
                        x[s.val][va],
                        y[s.val][va] == positive,
                        x[s.test][te],
                        y[s.test][te] == positive,
                    )
                )
            return float(np.mean(accuracies))

        return self._reference(f"dense/{data.name}", compute)

    def dense_probe(self, feats: SAEFeatures, data: TaskData) -> Any:
        """The notebook's probe: balanced LR on all pooled latents of the train split."""
        if data.name not in feats.dense_probes:
            x, s = feats.latents[data.name], data.split
            feats.dense_probes[data.name] = probing.fit_logistic(
                x[s.train], data.y[s.train], balanced=True
            )
        return feats.dense_probes[data.name]


def mean_over_tasks(
    per_task: dict[str, tuple[float, np.ndarray | None]], details: dict[str, Any]
) -> MetricValue:
    """The mean of per-task values; replicates averaged when every task has them."""
    values = [v for v, _ in per_task.values()]
    reps = [r for _, r in per_task.values()]
    replicates = np.mean(reps, axis=0) if reps and all(r is not None for r in reps) else None
    return MetricValue(float(np.mean(values)), replicates, unit="example", details=details)


class ProbingSuite(Suite):
    name = "probing"
    description = "Notebook sparse_probing (dense probe on latents) and SAEBench k-sparse probing"
    settings_type = ProbingSettings
    metrics = (
        MetricSpec(
            "sparse_probing",
            "mean test AUROC of a dense logistic probe on mean-pooled latents",
            bounds=UNIT,
            ci_unit="example",
            component=True,
        ),
        *(
            MetricSpec(
                f"sparse_probing_k{k}",
                f"SAEBench k-sparse probing test accuracy, k = {k}",
                bounds=UNIT,
                ci_unit="example",
                params={"k": k},
                component=True,
            )
            for k in K_VALUES
        ),
    )

    def prepare(self, group: GroupContext) -> ProbingState:
        return ProbingState(group, group.settings(self.name))

    def compute(self, subject: SubjectContext, metric: MetricSpec) -> dict[str, MetricValue]:
        state: ProbingState = subject.state

        def compute() -> dict[str, MetricValue]:
            with subject.group.progress():
                feats = state.features(subject.ref.key, subject.sae)
                if "k" in metric.params:
                    value = self.k_sparse_probing(state, feats, int(metric.params["k"]))
                else:
                    value = self.sparse_probing(state, feats)
            return {metric.name: value}

        inputs = {"data": state.data_hash(), "settings": to_dict(state.settings)}
        return cached_control_values(subject, [metric.name], inputs, compute)

    def sparse_probing(self, state: ProbingState, feats: SAEFeatures) -> MetricValue:
        """Notebook definition: balanced LR on all pooled latents, test AUROC, mean over tasks."""
        per_task = {}
        for data in state.tasks:
            x, s = feats.latents[data.name], data.split
            proba = state.dense_probe(feats, data).predict_proba(x[s.test])
            value = float(probing.macro_auroc(proba, data.y[s.test]))
            reps = (
                probing.macro_auroc(proba, data.y[s.test], data.weights)
                if data.weights is not None
                else None
            )
            per_task[data.name] = (value, reps)
        return mean_over_tasks(
            per_task,
            {
                "probing_tasks": [d.name for d in state.tasks],
                "probing_per_task_auc": {k: v for k, (v, _) in per_task.items()},
                "tasks": state.info(),
                "pooling": f"mean over ordinary tokens of the first {state.settings.max_tokens} "
                "tokens (BOS excluded)",
                "task_activation_seconds": round(state.seconds, 2),
                "sae_encode_seconds": round(feats.seconds, 2),
                "probes_converged": all(
                    getattr(feats.dense_probes[d.name], "converged_", True) for d in state.tasks
                ),
            },
        )

    def k_sparse_probing(self, state: ProbingState, feats: SAEFeatures, k: int) -> MetricValue:
        """SAEBench definition: top-k latents by train mean difference, LR, test accuracy."""
        per_task, aurocs = {}, {}
        for data in state.tasks:
            fits = k_sparse_fits(feats.latents[data.name], data, k, state.seed)
            reps = mean_fit(fits, "accuracy", data.weights) if data.weights is not None else None
            per_task[data.name] = (float(mean_fit(fits, "accuracy", None)), reps)
            aurocs[data.name] = float(mean_fit(fits, "auroc", None))
        llm = {data.name: state.model_reference(data, k) for data in state.tasks}
        return mean_over_tasks(
            per_task,
            {
                "k": k,
                "per_task_accuracy": {name: v for name, (v, _) in per_task.items()},
                "per_task_auroc": aurocs,
                "auroc": float(np.mean(list(aurocs.values()))),
                "llm_reference": llm,
                "llm_reference_accuracy": float(np.mean([v["accuracy"] for v in llm.values()])),
                "llm_dense_accuracy": float(
                    np.mean([state.model_dense_accuracy(data) for data in state.tasks])
                ),
            },
        )


def k_sparse_fits(
    x: np.ndarray, data: TaskData, k: int, seed: int
) -> list[tuple[probing.KSparseFit, np.ndarray]]:
    """SAEBench's one-vs-rest k-sparse probes of one task, with their test columns."""
    s = data.split
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


def mean_fit(
    fits: list[tuple[probing.KSparseFit, np.ndarray]], what: str, weights: np.ndarray | None
) -> np.ndarray:
    """Mean over a task's binary problems of a fit's accuracy or AUROC (per resample)."""
    return np.mean(
        [getattr(fit, what)(None if weights is None else weights[..., te]) for fit, te in fits],
        axis=0,
    )
