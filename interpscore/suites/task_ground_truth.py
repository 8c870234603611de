"""Task ground truth on the model itself: supervised feature dictionaries of templated
tasks (Makelov, Lange & Nanda 2024; SAGE, Venhoff et al. 2024).

Each bundled task (indirect-object identification, country capitals, subject-verb number
agreement; see :mod:`interpscore.subjects.gt_tasks`) has known attribute values per prompt.
On the SAE's model and hook, every prompt runs once; the activation at the task's read
position (the repeated name, the country, the head noun) gives the supervised dictionary
(attribute-value means, fit on the train split). On the test split an SAE is scored beside
that dictionary (the ceiling) and its random-init control (the floor):

* ``task_gt_sufficiency`` — logit difference kept when the read activation is replaced by
  the SAE's reconstruction, with mean-ablation as 0 and the clean run as 1;
* ``task_gt_control@kK`` — fraction of the logit difference moved to the counterfactual's
  (reached by patching in its activation) by setting at most K latents to their values on
  the counterfactual prompt; the K latents are chosen on train, per pair of attribute
  values, as the ones whose mean edits best build the supervised edit;
* ``task_gt_detection_f1`` — per attribute value, the best single latent's test F1 as its
  detector (latent and threshold chosen on train);
* ``task_gt_latents_f1_90`` — per attribute value, the fewest latents whose logistic
  detector reaches test F1 0.9.

Values are means over the tasks the model solves at this hook (a task it does not solve is
reported not applicable with its numbers); intervals resample test prompts per task. Patched
runs start at the hook: only the layers after it run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from interpscore.errors import InterpScoreError
from interpscore.evaluation.cache_keys import tensor_hash
from interpscore.evaluation.control_values import cached_control_values
from interpscore.evaluation.prepared import cached_arrays
from interpscore.metrics import task_ground_truth as gt
from interpscore.metrics.stats import percentile_interval, resample_weights
from interpscore.results.formatting import fmt
from interpscore.results.records import MetricValue
from interpscore.settings import checked, option, to_dict
from interpscore.subjects.gt_tasks import (
    BUNDLED_GT_TASKS,
    GTTask,
    TaskRun,
    gt_task_specs,
    load_gt_tasks,
    prepare_task,
)
from interpscore.suites.base import GroupContext, MetricSpec, SubjectContext, Suite

CONTROL_KS = (1, 2, 4, 8)
UNIT = (0.0, 1.0)
SUFFICIENCY = "task_gt_sufficiency"
DETECTION = "task_gt_detection_f1"
LATENTS = "task_gt_latents_f1_90"
#: Value-cache kind of one task's clean run and its patched runs without an SAE.
TASK_STATE = "task_gt_state"
CLEAN_ARRAYS = ("clean.x", "clean.clean", "clean.hook_acts")


def control_metric(k: int) -> str:
    return f"task_gt_control@k{k}"


#: Metric name → (its part of a task's values, the applicability test it needs).
PARTS = {
    SUFFICIENCY: ("sufficiency", "sufficiency"),
    **{control_metric(k): (f"control@{k}", "control") for k in CONTROL_KS},
    DETECTION: ("detection", "detection"),
    LATENTS: ("latents", "detection"),
}


@dataclass(frozen=True)
class TaskGroundTruthSettings:
    """Which tasks run, and when a task counts as solved or informative at the hook."""

    tasks: tuple[str, ...] = option(
        BUNDLED_GT_TASKS,
        "--task-gt-tasks",
        "Templated ground-truth tasks (repeatable, or comma-separated names): bundled ioi, "
        "capitals, agreement; file:PATH for a task file of the same format.",
        metavar="TASKS",
        action="append",
        type=checked(gt_task_specs),
        combine=lambda values: tuple(itertools.chain.from_iterable(values)),
    )
    #: A task is solved when this share of test prompts prefers the answer to the foil …
    min_accuracy: float = 0.8
    #: … and the mean logit difference (nats) is at least this.
    min_logit_diff: float = 1.0
    #: Sufficiency needs mean-ablating the read position to remove this share of it …
    min_ablation_effect: float = 0.25
    #: … and control needs the counterfactual patch to move it by this many nats.
    min_patch_effect: float = 1.0
    batch_size: int = 32


@dataclass
class TaskState:
    """One task on one (model, hook): its runs, dictionary and SAE-independent results."""

    run: TaskRun
    dictionary: gt.SupervisedDictionary
    weights: np.ndarray | None
    clean: np.ndarray
    mean_ablated: np.ndarray
    patched: np.ndarray
    supervised: dict[str, tuple[float, np.ndarray | None]]
    applicable: dict[str, str | None]
    numbers: dict[str, float]
    targets: list[tuple[str, str, np.ndarray]]
    #: The patched runs made without an SAE (logit differences, by name).
    lm_runs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.name

    def interval(self, replicates: np.ndarray | None) -> list[float] | None:
        ci = percentile_interval(replicates)
        return list(ci) if ci else None


@dataclass
class GroundTruthState:
    """Every task of one (model, hook)."""

    tasks: list[TaskState]

    def fingerprint(self) -> str:
        """A content hash of every task's prompts, labels, splits, read activations, clean
        run and resamples: what a random-init control's stored values are keyed by."""
        arrays: list[np.ndarray] = []
        for task in self.tasks:
            run = task.run
            arrays.append(np.frombuffer(run.inputs_hash().encode(), dtype=np.uint8))
            arrays += [run.x, run.clean]
            arrays += [] if task.weights is None else [task.weights]
        return tensor_hash(*arrays)


def _reps(fn, weights: np.ndarray | None) -> np.ndarray | None:
    if weights is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(fn(weights), dtype=np.float64)


def _controlled_pairs(run: TaskRun) -> tuple[np.ndarray, np.ndarray]:
    """(source value, counterfactual value) of the controlled attribute per test prompt."""
    labels = run.labels[run.task.controlled]
    return labels[run.test], labels[run.pair[run.test]]


def _detection_targets(run: TaskRun) -> list[tuple[str, str, np.ndarray]]:
    """(attribute, value, is-this-value per prompt) for every value with at least two
    prompts of it and two without in both splits (an F1 needs both)."""
    out = []
    for attribute, labels in run.labels.items():
        for index, value in enumerate(run.values[attribute]):
            y = labels == index
            enough = all(2 <= y[s].sum() <= len(s) - 2 for s in (run.train, run.test))
            if enough:
                out.append((attribute, value, y))
    return out


def prepare_task_state(
    run: TaskRun,
    settings: TaskGroundTruthSettings,
    n_resamples: int,
    seed: int,
    stored: Mapping[str, np.ndarray] | None = None,
) -> TaskState:
    """The supervised dictionary and every patched run that does not involve an SAE (each
    run taken from ``stored``, by name, when it is there: see :attr:`TaskState.lm_runs`)."""
    test, train = run.test, run.train
    lm_runs: dict[str, np.ndarray] = {}

    def diffs(name: str, replacement: np.ndarray, desc: str) -> np.ndarray:
        if stored is not None and name in stored:
            lm_runs[name] = stored[name]
        else:
            lm_runs[name] = run.logit_diffs(test, replacement, f"{run.name} {desc}")
        return lm_runs[name]

    train_labels = {a: v[train] for a, v in run.labels.items()}
    dictionary = gt.fit_supervised_dictionary(run.x[train], train_labels, run.values)
    weights = resample_weights(len(test), n_resamples, seed) if n_resamples > 0 else None
    clean = run.clean[test]
    numbers = {
        "accuracy": float((clean > 0).mean()),
        "logit_diff": float(clean.mean()),
    }
    applicable: dict[str, str | None] = {}
    solved = (
        numbers["accuracy"] >= settings.min_accuracy
        and numbers["logit_diff"] >= settings.min_logit_diff
    )
    if not solved:
        reason = (
            f"the model does not solve {run.name}: test accuracy {numbers['accuracy']:.3f} "
            f"(needs {settings.min_accuracy}), mean logit difference "
            f"{numbers['logit_diff']:.3f} (needs {settings.min_logit_diff})"
        )
        applicable = dict.fromkeys(("sufficiency", "control", "detection"), reason)
        empty = np.zeros(0)
        return TaskState(run, dictionary, weights, clean, empty, empty, {}, applicable, numbers, [])
    mean_rows = np.repeat(dictionary.mean[None], len(test), axis=0)
    mean_ablated = diffs("mean_ablated", mean_rows, "mean-ablated")
    patched = diffs("patched", run.x[run.pair[test]], "counterfactual")
    numbers["mean_ablated_logit_diff"] = float(mean_ablated.mean())
    numbers["patched_logit_diff"] = float(patched.mean())
    ablation_effect = 1.0 - numbers["mean_ablated_logit_diff"] / numbers["logit_diff"]
    patch_effect = numbers["logit_diff"] - numbers["patched_logit_diff"]
    numbers["ablation_effect"] = float(ablation_effect)
    numbers["patch_effect"] = float(patch_effect)
    applicable["sufficiency"] = (
        None
        if ablation_effect >= settings.min_ablation_effect
        else f"mean-ablating the read position removes only {ablation_effect:.3f} of "
        f"{run.name}'s logit difference at this hook (needs {settings.min_ablation_effect})"
    )
    applicable["control"] = (
        None
        if patch_effect >= settings.min_patch_effect
        else f"patching in the counterfactual moves {run.name}'s logit difference by only "
        f"{patch_effect:.3f} nats at this hook (needs {settings.min_patch_effect})"
    )
    targets = _detection_targets(run)
    applicable["detection"] = (
        None
        if targets
        else f"no attribute value of {run.name} has two test and two train prompts with and "
        "without it"
    )
    supervised: dict[str, tuple[float, np.ndarray | None]] = {}
    test_labels = {a: v[test] for a, v in run.labels.items()}
    recon = diffs("supervised", dictionary.reconstruct(test_labels), "supervised")
    supervised["sufficiency"] = (
        float(gt.kept_fraction(recon, clean, mean_ablated)),
        _reps(lambda w: gt.kept_fraction(recon, clean, mean_ablated, w), weights),
    )
    source, target = _controlled_pairs(run)
    edited_x = dictionary.edit(run.x[test], run.task.controlled, source, target)
    edited = diffs("supervised_edit", edited_x, "supervised edit")
    supervised["control"] = (
        float(gt.moved_fraction(clean, edited, patched)),
        _reps(lambda w: gt.moved_fraction(clean, edited, patched, w), weights),
    )
    f1s, reps = [], []
    for attribute, value, y in targets:
        direction = dictionary.features[attribute][run.values[attribute].index(value)]
        scores = run.x @ direction
        threshold, _ = gt.best_thresholds(scores[train, None], y[train])
        predicted = scores[test] > threshold[0]
        f1s.append(float(gt.f1(predicted, y[test])))
        reps.append(_reps(lambda w, p=predicted, t=y[test]: gt.f1(p, t, w), weights))
    if targets:
        supervised["detection"] = (
            float(np.mean(f1s)),
            np.mean(reps, axis=0) if weights is not None else None,
        )
    return TaskState(
        run,
        dictionary,
        weights,
        clean,
        mean_ablated,
        patched,
        supervised,
        applicable,
        numbers,
        targets,
        lm_runs,
    )


@torch.inference_mode()
def _encode(sae: nn.Module, x: np.ndarray) -> np.ndarray:
    device = next(sae.parameters()).device
    return sae.encode(torch.as_tensor(x, dtype=torch.float32, device=device)).float().cpu().numpy()


@torch.inference_mode()
def _decode(sae: nn.Module, z: np.ndarray) -> np.ndarray:
    device = next(sae.parameters()).device
    return sae.decode(torch.as_tensor(z, dtype=torch.float32, device=device)).float().cpu().numpy()


def sae_task_values(
    task: TaskState, sae: nn.Module
) -> dict[str, tuple[float, np.ndarray | None, dict[str, Any]]]:
    """One SAE's values on one task: sufficiency, control at each k, detection F1 and the
    latents count, each as (value, replicates, details)."""
    run, weights, test, train = task.run, task.weights, task.run.test, task.run.train
    z = _encode(sae, run.x)
    out: dict[str, tuple[float, np.ndarray | None, dict[str, Any]]] = {}
    if task.applicable["sufficiency"] is None:
        recon = run.logit_diffs(test, _decode(sae, z[test]), f"{run.name} SAE reconstruction")
        out["sufficiency"] = (
            float(gt.kept_fraction(recon, task.clean, task.mean_ablated)),
            _reps(lambda w: gt.kept_fraction(recon, task.clean, task.mean_ablated, w), weights),
            {},
        )
    if task.applicable["control"] is None:
        out |= _control(task, sae, z)
    if task.applicable["detection"] is None:
        f1s, reps, counts, per_value = [], [], [], {}
        for attribute, value, y in task.targets:
            thresholds, train_f1 = gt.best_thresholds(z[train], y[train])
            ranking = np.argsort(-train_f1, kind="stable")
            best = int(ranking[0])
            predicted = z[test, best] > thresholds[best]
            f1s.append(float(gt.f1(predicted, y[test])))
            reps.append(_reps(lambda w, p=predicted, t=y[test]: gt.f1(p, t, w), weights))
            needed, _ = gt.latents_to_reach(z[train], y[train], z[test], y[test], ranking)
            counts.append(needed)
            per_value[f"{attribute}={value}"] = {"latent": best, "f1": f1s[-1], "latents": needed}
        details = {"per_value": per_value}
        out["detection"] = (
            float(np.mean(f1s)),
            np.mean(reps, axis=0) if weights is not None else None,
            details,
        )
        out["latents"] = (
            float(np.mean(counts)),
            None,
            {"not_reached": int(sum(c == gt.NOT_REACHED for c in counts))},
        )
    return out


def _control(
    task: TaskState, sae: nn.Module, z: np.ndarray
) -> dict[str, tuple[float, np.ndarray | None, dict[str, Any]]]:
    """Sparse control at every k: per pair of controlled values, latents chosen on train
    (greedy towards the supervised edit, each latent moved by its mean difference), then set
    on each test prompt to their values on its counterfactual."""
    run = task.run
    attribute = run.task.controlled
    labels = run.labels[attribute]
    n_values = len(run.values[attribute])
    train = run.train
    means = np.zeros((n_values, z.shape[1]))
    np.add.at(means, labels[train], z[train])
    means /= np.maximum(np.bincount(labels[train], minlength=n_values), 1)[:, None]
    source, target = _controlled_pairs(run)
    pairs, row_pair = np.unique(np.stack([source, target], axis=1), axis=0, return_inverse=True)
    features = task.dictionary.features[attribute]
    w_dec = sae.W_dec.detach().float().cpu().numpy()
    chosen = gt.greedy_edit_latents(
        features[pairs[:, 1]] - features[pairs[:, 0]],
        means[pairs[:, 1]] - means[pairs[:, 0]],
        w_dec,
        max(CONTROL_KS),
    )[row_pair.ravel()]
    test, partner = run.test, run.pair[run.test]
    z_source, z_target = z[test], z[partner]
    base = _decode(sae, z_source)
    rows = np.arange(len(test))[:, None]
    out = {}
    for k in CONTROL_KS:
        edited_z = z_source.copy()
        edited_z[rows, chosen[:, :k]] = z_target[rows, chosen[:, :k]]
        x_edit = run.x[test] + _decode(sae, edited_z) - base
        edited = run.logit_diffs(test, x_edit, f"{run.name} SAE edit k={k}")
        out[f"control@{k}"] = (
            float(gt.moved_fraction(task.clean, edited, task.patched)),
            _reps(
                lambda w, e=edited: gt.moved_fraction(task.clean, e, task.patched, w), task.weights
            ),
            {},
        )
    return out


def _task_state(
    group: GroupContext, settings: TaskGroundTruthSettings, task: GTTask, index: int
) -> TaskState:
    """One task's state on the group's (model, hook); its clean run and patched runs come
    from the value cache when stored (they depend on the model, hook, prompts, settings and
    seed, not on an SAE)."""
    run = group.run
    prepared = prepare_task(
        task, group.lm, group.site, settings.batch_size, run.show_progress, clean=False
    )
    seed = run.seed + 104729 * (index + 1)
    built: list[TaskState] = []

    def build() -> dict[str, np.ndarray]:
        prepared.run_clean()
        built.append(prepare_task_state(prepared, settings, run.bootstrap, seed))
        runs = {f"lm.{name}": v for name, v in built[0].lm_runs.items()}
        return {f"clean.{k}": v for k, v in prepared.clean_arrays().items()} | runs

    key = {
        "hook": group.site.name,
        "task": prepared.inputs_hash(),
        "settings": to_dict(settings),
        "seed": seed,
        "bootstrap": run.bootstrap,
    }
    arrays, _ = cached_arrays(group.value_cache(), TASK_STATE, key, CLEAN_ARRAYS, build)
    if built:
        return built[0]
    prepared.restore_clean({k.removeprefix("clean."): v for k, v in arrays.items()})
    stored = {k.removeprefix("lm."): v for k, v in arrays.items() if k.startswith("lm.")}
    return prepare_task_state(prepared, settings, run.bootstrap, seed, stored)


class TaskGroundTruthSuite(Suite):
    name = "task_ground_truth"
    description = "Supervised dictionaries of templated tasks on the model (Makelov et al., SAGE)"
    settings_type = TaskGroundTruthSettings
    metrics = (
        MetricSpec(
            SUFFICIENCY,
            "logit difference kept with the read activation replaced by the SAE "
            "reconstruction (mean-ablation 0, clean 1)",
            ci_unit="prompt",
        ),
        *(
            MetricSpec(
                control_metric(k),
                f"fraction of the logit difference moved to the counterfactual's by setting "
                f"{k} latent(s) (chosen on train) to their counterfactual values",
                ci_unit="prompt",
                params={"k": k},
            )
            for k in CONTROL_KS
        ),
        MetricSpec(
            DETECTION,
            "mean over attribute values of the best single latent's test F1 as a detector",
            bounds=UNIT,
            ci_unit="prompt",
        ),
        MetricSpec(
            LATENTS,
            "mean over attribute values of the fewest latents whose detector reaches test "
            f"F1 0.9 ({gt.NOT_REACHED} when {gt.DETECTOR_KS[-1]} do not)",
            direction="lower",
            bounds=(1.0, float(gt.NOT_REACHED)),
            ci_unit=None,
        ),
    )

    def prepare(self, group: GroupContext) -> GroundTruthState:
        settings: TaskGroundTruthSettings = group.settings(self.name)
        tasks = load_gt_tasks(settings.tasks)
        return GroundTruthState(
            [_task_state(group, settings, task, index) for index, task in enumerate(tasks)]
        )

    def compute(
        self, subject: SubjectContext, metric: MetricSpec
    ) -> dict[str, MetricValue | InterpScoreError]:
        state: GroundTruthState = subject.state

        def compute_all() -> dict[str, MetricValue | InterpScoreError]:
            with subject.group.progress():
                per_task = {t.name: sae_task_values(t, subject.sae) for t in state.tasks}
            out: dict[str, MetricValue | InterpScoreError] = {}
            for spec in self.metrics:
                part, kind = PARTS[spec.name]
                out[spec.name] = self._combine(state, per_task, part, kind, spec.ci_unit)
            return out

        inputs = {"data": state.fingerprint(), "settings": to_dict(subject.settings)}
        names = [spec.name for spec in self.metrics]
        return cached_control_values(subject, names, inputs, compute_all)

    @staticmethod
    def _combine(
        state: GroundTruthState,
        per_task: dict[str, dict[str, tuple[float, np.ndarray | None, dict[str, Any]]]],
        part: str,
        kind: str,
        unit: str | None,
    ) -> MetricValue:
        """The mean over tasks where ``part`` applies, with per-task values and the
        supervised dictionary's value (the ceiling) beside each."""
        tasks: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        values, reps, ceilings, ceiling_reps = [], [], [], []
        for task in state.tasks:
            reason = task.applicable[kind]
            if reason is not None:
                skipped[task.name] = reason
                continue
            value, replicates, extra = per_task[task.name][part]
            entry: dict[str, Any] = {
                "value": value,
                "ci95": task.interval(replicates),
                "n_test": len(task.run.test),
                **extra,
            }
            if kind in task.supervised and part != "latents":
                ceiling, ceiling_r = task.supervised[kind]
                entry["supervised"] = ceiling
                entry["supervised_ci95"] = task.interval(ceiling_r)
                ceilings.append(ceiling)
                ceiling_reps.append(ceiling_r)
            tasks[task.name] = entry
            values.append(value)
            reps.append(replicates)
        info = {t.name: {**t.run.describe(), **t.numbers} for t in state.tasks}
        if not values:
            return MetricValue.not_applicable(
                "; ".join(skipped.values()), tasks=info, not_applicable=skipped
            )
        details = {"tasks": tasks, "not_applicable": skipped, "task_info": info}
        replicates = np.mean(reps, axis=0) if unit and all(r is not None for r in reps) else None
        ceiling_value = None
        if ceilings and len(ceilings) == len(values):
            ceiling_r = (
                np.mean(ceiling_reps, axis=0)
                if replicates is not None and all(r is not None for r in ceiling_reps)
                else None
            )
            ceiling_value = {
                "supervised": MetricValue(float(np.mean(ceilings)), ceiling_r, "prompt")
            }
            details["supervised"] = float(np.mean(ceilings))
        return MetricValue(
            float(np.mean(values)),
            replicates,
            unit or "prompt",
            details,
            ceilings=ceiling_value or {},
            breakdown={name: entry["value"] for name, entry in tasks.items()},
        )

    def markdown(self, report: dict[str, Any]) -> list[str]:
        return task_markdown(report, [m.name for m in self.metrics])


def _control_key(metric: dict[str, Any]) -> str | None:
    """The SAE's random-init control in a metric's comparisons, if it ran."""
    return next(
        (k for k, c in (metric.get("controls") or {}).items() if c.get("kind") == "random-init"),
        None,
    )


def task_markdown(report: dict[str, Any], names: list[str]) -> list[str]:
    """A summary table (mean over tasks) and one table per task: each SAE with its
    random-init control (the floor) under it, and the supervised dictionary (the ceiling)."""
    saes = [s for s in report["saes"] if (s.get("metrics", {}).get(names[0]) or {}).get("details")]
    if not saes:
        return []
    info = saes[0]["metrics"][names[0]]["details"].get("task_info") or {}
    header = "| SAE | " + " | ".join(n.removeprefix("task_gt_") for n in names) + " |"
    rule = "|" + "---|" * (len(names) + 1)
    lines = [
        "",
        "## Task ground truth (supervised dictionaries on the model)",
        "",
        "Templated tasks with known variables (Makelov et al. 2024; SAGE), test split only. "
        "sufficiency: logit difference kept with the SAE's reconstruction at the read position "
        "(mean-ablation 0, clean 1); control@kK: fraction of the logit difference moved to "
        "the counterfactual's by K latents; detection_f1: best single latent's F1 per "
        "attribute value; latents_f1_90: latents a detector needs for F1 0.9 "
        f"({gt.NOT_REACHED} = not within {gt.DETECTOR_KS[-1]}). Under each SAE its random-init "
        "control; last, the supervised dictionary. Mean over tasks:",
        "",
        header,
        rule,
    ]

    def rows(part: str | None) -> list[str]:
        out = []
        for sae in saes:
            metrics = [sae["metrics"].get(n) or {} for n in names]
            cells, floors = [], []
            for metric in metrics:
                details = metric.get("details") or {}
                if part is None:
                    cells.append(fmt(metric.get("value")))
                elif part in details.get("not_applicable", {}):
                    cells.append("n/a")
                else:
                    cells.append(fmt(details.get("tasks", {}).get(part, {}).get("value")))
                control = (metric.get("controls") or {}).get(_control_key(metric) or "", {})
                floor = (
                    control.get("value") if part is None else control.get("breakdown", {}).get(part)
                )
                floors.append(fmt(floor))
            out.append(f"| **{sae['id']}** | " + " | ".join(cells) + " |")
            if any(_control_key(m) for m in metrics):
                out.append("| ↳ random-init | " + " | ".join(floors) + " |")
        ceilings = []
        for name in names:
            details = (saes[0]["metrics"].get(name) or {}).get("details") or {}
            value = (
                details.get("supervised")
                if part is None
                else (details.get("tasks", {}).get(part, {}).get("supervised"))
            )
            ceilings.append(fmt(value))
        out.append("| *supervised dictionary* | " + " | ".join(ceilings) + " |")
        return out

    lines += rows(None)
    for task, facts in info.items():
        lines += [
            "",
            f"### {task}",
            "",
            f"Test accuracy {fmt(facts.get('accuracy'))}, mean logit difference "
            f"{fmt(facts.get('logit_diff'), 2)}; mean-ablated "
            f"{fmt(facts.get('mean_ablated_logit_diff'), 2)}, counterfactual patch "
            f"{fmt(facts.get('patched_logit_diff'), 2)} "
            f"({facts.get('prompts', {}).get('test', '?')} test prompts; source "
            f"{facts.get('source', '?')}).",
            "",
            header,
            rule,
            *rows(task),
        ]
    return lines
