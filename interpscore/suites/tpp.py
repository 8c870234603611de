"""TPP: the notebook's column-zeroing definition (InterpScore's component), its
chance-anchored variant, and SAEBench's residual-stream ablation at every N.

Reads the probing family's shared state (task data, splits, pooled latents) so the task
texts run through the model once for both families.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interpscore.errors import SpecError
from interpscore.evaluation.control_values import cached_control_values
from interpscore.metrics import probing
from interpscore.results.records import MetricValue
from interpscore.settings import option, positive_int, to_dict
from interpscore.suites.base import MetricSpec, SubjectContext, Suite
from interpscore.suites.probing import ProbingState, SAEFeatures, TaskData

TPP_NS = (2, 5, 10, 20, 50, 100, 500)
UNIT = (0.0, 1.0)


@dataclass(frozen=True)
class TppSettings:
    concept: str = option(
        "vader_sentiment",
        "--tpp-concept",
        "Concept task of the notebook TPP: a binary task, or CLASS of a multi-class task as "
        "TASK:CLASS (the notebook uses toxicity).",
        metavar="TASK[:CLASS]",
    )
    n: int = option(
        20, "--tpp-n", "Latents zeroed by the notebook TPP.", metavar="N", type=positive_int
    )


class TppSuite(Suite):
    name = "tpp"
    description = "Targeted probe perturbation (notebook and SAEBench definitions)"
    settings_type = TppSettings
    metrics = (
        MetricSpec(
            "tpp",
            "AUROC drop from zeroing the probe's top-|coef| latents over clean AUROC, clipped",
            bounds=UNIT,
            ci_unit="example",
            component=True,
        ),
        MetricSpec(
            "tpp_chance_anchored",
            "AUROC drop over (clean AUROC − 0.5), clipped to [0, 1]",
            bounds=UNIT,
            ci_unit="example",
            component=True,
        ),
        *(
            MetricSpec(
                f"tpp_saebench@{n}",
                f"SAEBench TPP at N = {n}: intended minus mean unintended accuracy drop",
                bounds=(-1.0, 1.0),
                ci_unit="example",
                params={"n": n},
            )
            for n in TPP_NS
        ),
    )

    def compute(self, subject: SubjectContext, metric: MetricSpec) -> dict[str, MetricValue]:
        """The notebook's two TPP metrics, or SAEBench's at every N, of one SAE (a random-init
        control's from the value cache when stored)."""
        state: ProbingState = subject.group.state("probing")
        saebench = "n" in metric.params

        def compute() -> dict[str, MetricValue]:
            with subject.group.progress():
                feats = state.features(subject.ref.key, subject.sae)
                if saebench:
                    return self.saebench(state, feats)
                return self.notebook(state, feats, subject.settings)

        names = [m.name for m in self.metrics if ("n" in m.params) == saebench]
        inputs = {
            "data": state.data_hash(),
            "probing": to_dict(state.settings),
            "settings": to_dict(subject.settings),
        }
        return cached_control_values(subject, names, inputs, compute)

    def concept(self, state: ProbingState, settings: TppSettings) -> tuple[TaskData, int | None]:
        name, _, label = settings.concept.partition(":")
        try:
            data = state.task(name)
        except KeyError:
            raise SpecError(
                f"--tpp-concept {settings.concept!r} names no task among --probing-tasks "
                f"({', '.join(d.name for d in state.tasks)}).",
                "add the task to --probing-tasks or pick one of those.",
            ) from None
        if data.n_classes == 2 and not label:
            return data, None
        if label not in data.task.classes:
            raise SpecError(
                f"--tpp-concept {settings.concept!r}: task {name} has classes "
                f"{', '.join(data.task.classes)}.",
                f"name one as {name}:CLASS.",
            )
        return data, data.task.classes.index(label)

    def notebook(
        self, state: ProbingState, feats: SAEFeatures, settings: TppSettings
    ) -> dict[str, MetricValue]:
        """Notebook TPP and its chance-anchored variant, on the concept task."""
        data, positive = self.concept(state, settings)
        x, s = feats.latents[data.name], data.split
        if positive is None:
            clf, y_test = state.dense_probe(feats, data), data.y[s.test]
        else:
            clf = probing.fit_logistic(x[s.train], data.y[s.train] == positive, balanced=True)
            y_test = (data.y[s.test] == positive).astype(np.int64)
        point = probing.tpp_zeroing(clf, x[s.test], y_test, settings.n)
        reps = (
            probing.tpp_zeroing(clf, x[s.test], y_test, settings.n, data.weights)
            if data.weights is not None
            else None
        )
        details = {
            "tpp_concept": settings.concept,
            "tpp_top_features": settings.n,
            "top_latents": point.top_latents,
            "auc_clean": float(point.auc_clean),
            "auc_ablated": float(point.auc_ablated),
            "split_sizes": data.split.sizes(),
        }
        return {
            "tpp": MetricValue(float(point.tpp), reps.tpp if reps else None, "example", details),
            "tpp_chance_anchored": MetricValue(
                float(point.chance_anchored),
                reps.chance_anchored if reps else None,
                "example",
                details,
            ),
        }

    def saebench(self, state: ProbingState, feats: SAEFeatures) -> dict[str, MetricValue]:
        """SAEBench TPP over the multi-class tasks, for every N."""
        multi = [d for d in state.tasks if d.n_classes > 2]
        if not multi:
            raise SpecError(
                "SAEBench TPP needs a task with more than two classes among --probing-tasks.",
                "add one (wordnet_topic or code_language).",
            )
        per_n: dict[int, list[tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]]] = {
            n: [] for n in TPP_NS
        }
        for data in multi:
            probes = data.class_probes(state.seed)
            weights = (None, data.weights) if data.weights is not None else (None,)
            result = probing.tpp_saebench(
                probes,
                data.x_model,
                feats.latents[data.name],
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
            out[f"tpp_saebench@{n}"] = MetricValue(
                float(np.mean([p["total"] for p, _ in rows])),
                replicates,
                "example",
                {
                    "n": n,
                    "tasks": [d.name for d in multi],
                    "intended": float(np.mean([p["intended"] for p, _ in rows])),
                    "unintended": float(np.mean([p["unintended"] for p, _ in rows])),
                    "probe_c": {d.name: [p.c for p in d.class_probes(state.seed)] for d in multi},
                },
            )
        return out
