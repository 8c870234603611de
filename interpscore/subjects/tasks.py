"""Probing tasks as data: texts, labels, an optional group per text, and a split rule.

A task spec (``--probing-tasks``, repeatable; a value without ``#`` may hold several
names separated by commas) is one of:

* a bundled task name (``wordnet_topic``, ``code_language``, ``vader_sentiment``);
* a predefined hub task of the InterpScore notebook (``toxicity``, ``sentiment``);
* ``file:PATH`` — a local JSONL / CSV / parquet file with ``text`` and ``label`` columns
  (and optionally ``group``);
* ``hf:ID[:CONFIG][@SPLIT]`` with ``#text=COL,label=COL[,revision=REV]`` after it.

A dataset that fails to load is an error that names it; nothing is ever substituted.
Splits are stratified by label, seeded, and keep every group (for example every sentence
built from the same VADER word) on one side.
"""

from __future__ import annotations

import json
import lzma
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interpscore.errors import SpecError
from interpscore.subjects.paths import tasks_dir

BUNDLED_TASKS = ("wordnet_topic", "code_language", "vader_sentiment")
DEFAULT_TASKS = ",".join(BUNDLED_TASKS)
SPLIT_FRACTIONS = (0.7, 0.1, 0.2)


@dataclass(frozen=True)
class HubTask:
    """A task read from a hub dataset."""

    dataset: str
    text: str
    label: str
    config: str | None = None
    split: str = "train"
    revision: str | None = None


#: The InterpScore notebook's probing tasks (need the hub or its cache).
PREDEFINED: dict[str, HubTask] = {
    "toxicity": HubTask("SetFit/toxic_conversations", text="text", label="label"),
    "sentiment": HubTask("stanfordnlp/sst2", text="sentence", label="label"),
}


@dataclass(frozen=True)
class Split:
    """Disjoint train / validation / test indices into a task's examples."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass
class ProbingTask:
    """Texts with string labels; ``classes`` fixes the label order."""

    name: str
    texts: list[str]
    labels: list[str]
    source: str
    groups: list[str] | None = None
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = sorted(set(self.labels))
        if len(self.classes) < 2:
            raise SpecError(
                f"Probing task {self.name} has {len(self.classes)} class(es).",
                "a probing task needs at least two labels.",
            )
        if len(self.texts) != len(self.labels):
            raise SpecError(
                f"Probing task {self.name}: texts and labels differ in length.", "fix it."
            )

    @property
    def y(self) -> np.ndarray:
        """Labels as class indices."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        counts = Counter(self.labels)
        return {c: counts[c] for c in self.classes}

    def balanced_subset(self, n_examples: int, seed: int) -> ProbingTask:
        """At most ``n_examples`` examples with equal counts per class (seeded choice)."""
        rng = np.random.default_rng(seed)
        per_class = min(n_examples // len(self.classes), min(self.class_counts().values()))
        if per_class < 10:
            raise SpecError(
                f"Probing task {self.name} has only {per_class} examples in its smallest class.",
                "use a task with at least 10 examples per class, or raise --probe-examples.",
            )
        y = self.y
        keep = np.sort(
            np.concatenate(
                [
                    rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                    for c in range(len(self.classes))
                ]
            )
        )
        return ProbingTask(
            name=self.name,
            texts=[self.texts[i] for i in keep],
            labels=[self.labels[i] for i in keep],
            source=self.source,
            groups=[self.groups[i] for i in keep] if self.groups else None,
            classes=list(self.classes),
        )

    def split(self, seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> Split:
        """Stratified, seeded train/val/test split that keeps each group on one side."""
        rng = np.random.default_rng(seed)
        y = self.y
        groups = np.array(self.groups if self.groups else [str(i) for i in range(len(y))])
        parts: list[list[int]] = [[], [], []]
        for c in range(len(self.classes)):
            members = np.flatnonzero(y == c)
            unique = np.unique(groups[members])
            rng.shuffle(unique)
            bounds = np.cumsum([round(f * len(unique)) for f in fractions[:2]])
            chosen = [
                set(unique[: bounds[0]]),
                set(unique[bounds[0] : bounds[1]]),
                set(unique[bounds[1] :]),
            ]
            for part, names in zip(parts, chosen, strict=True):
                part.extend(int(i) for i in members if groups[i] in names)
        split = Split(*(np.array(sorted(p), dtype=np.int64) for p in parts))
        if self.groups:
            sides = [set(groups[s]) for s in (split.train, split.val, split.test)]
            if sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2]:
                raise SpecError(
                    f"Probing task {self.name} has groups that carry several labels.",
                    "give each group a single label.",
                )
        return split


def _rows_from_file(path: Path) -> list[dict[str, Any]]:
    if path.suffixes[-2:] == [".jsonl", ".xz"]:
        with lzma.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    import datasets

    builder = {".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
    try:
        return list(datasets.load_dataset(builder, data_files=str(path), split="train"))
    except (OSError, ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        raise SpecError(f"Cannot read probing task file {path}: {exc}.", "check the file.") from exc


def _task_from_rows(
    name: str, rows: list[dict[str, Any]], text: str, label: str, source: str
) -> ProbingTask:
    if not rows:
        raise SpecError(f"Probing task {name} ({source}) has no rows.", "check the dataset.")
    missing = [c for c in (text, label) if c not in rows[0]]
    if missing:
        raise SpecError(
            f"Probing task {name} ({source}) has no column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, rows[0]))}.",
            "name the columns with #text=COL,label=COL.",
        )
    groups = [str(r["group"]) for r in rows] if "group" in rows[0] else None
    return ProbingTask(
        name=name,
        texts=[str(r[text]) for r in rows],
        labels=[str(r[label]) for r in rows],
        source=source,
        groups=groups,
    )


def load_bundled(name: str) -> ProbingTask:
    registry = json.loads((tasks_dir() / "tasks.json").read_text())
    entry = next((t for t in registry if t["name"] == name), None)
    if entry is None:
        raise SpecError(
            f"No bundled probing task {name!r}.", f"use one of {', '.join(BUNDLED_TASKS)}."
        )
    task = _task_from_rows(
        name, _rows_from_file(tasks_dir() / entry["file"]), "text", "label", f"bundled:{name}"
    )
    task.classes = list(entry["labels"])
    return task


def load_hub(name: str, hub: HubTask, limit: int = 20_000) -> ProbingTask:
    import datasets

    label = f"{hub.dataset}" + (f":{hub.config}" if hub.config else "") + f"@{hub.split}"
    try:
        stream = datasets.load_dataset(
            hub.dataset, hub.config, split=hub.split, revision=hub.revision, streaming=True
        )
        rows = [row for _, row in zip(range(limit), stream, strict=False)]
    except (OSError, ValueError, ConnectionError, FileNotFoundError) as exc:
        raise SpecError(
            f"Cannot load probing task {name} from {label} ({str(exc).splitlines()[0]}).",
            "use it where the hub (or its cache) is reachable, or use bundled tasks: "
            f"--probing-tasks={DEFAULT_TASKS}.",
        ) from exc
    return _task_from_rows(name, rows, hub.text, hub.label, label)


def _parse_options(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise SpecError(f"Task option {part!r} is not KEY=VALUE.", "write #text=COL,label=COL.")
        out[key.strip()] = value.strip()
    return out


def load_task(spec: str) -> ProbingTask:
    """Load one task spec (see the module docstring)."""
    spec = spec.strip()
    if spec in BUNDLED_TASKS:
        return load_bundled(spec)
    if spec in PREDEFINED:
        return load_hub(spec, PREDEFINED[spec])
    body, _, options_text = spec.partition("#")
    options = _parse_options(options_text)
    if body.startswith("file:"):
        path = Path(body[5:]).expanduser()
        if not path.is_file():
            raise SpecError(f"Probing task file {path} does not exist.", "check the path.")
        return _task_from_rows(
            path.stem.split(".")[0],
            _rows_from_file(path),
            options.get("text", "text"),
            options.get("label", "label"),
            str(path),
        )
    if body.startswith("hf:"):
        name, _, split = body[3:].partition("@")
        dataset, _, config = name.partition(":")
        hub = HubTask(
            dataset,
            text=options.get("text", "text"),
            label=options.get("label", "label"),
            config=config or None,
            split=split or "train",
            revision=options.get("revision"),
        )
        return load_hub(dataset.rsplit("/", 1)[-1], hub)
    raise SpecError(
        f"Unknown probing task {spec!r}.",
        f"use {', '.join(BUNDLED_TASKS)}, {', '.join(PREDEFINED)}, file:PATH or "
        "hf:ID#text=COL,label=COL.",
    )


def split_specs(values: list[str]) -> list[str]:
    """Task specs from repeated option values; a value without ``#`` may list several."""
    out = []
    for value in values:
        out.extend([value] if "#" in value else [p.strip() for p in value.split(",") if p.strip()])
    return out


def check_task_spec(spec: str) -> str:
    """Refuse a task spec of no known form (without loading anything)."""
    body = spec.partition("#")[0]
    if spec in BUNDLED_TASKS or spec in PREDEFINED or body.startswith("hf:"):
        return spec
    if body.startswith("file:"):
        if not Path(body[5:]).expanduser().is_file():
            raise SpecError(f"Probing task file {body[5:]} does not exist.", "check the path.")
        return spec
    raise SpecError(
        f"Unknown probing task {spec!r}.",
        f"use {', '.join(BUNDLED_TASKS)}, {', '.join(PREDEFINED)}, file:PATH or "
        "hf:ID#text=COL,label=COL.",
    )


def task_specs(value: str) -> tuple[str, ...]:
    """One ``--probing-tasks`` value as checked task specs."""
    specs = tuple(check_task_spec(spec) for spec in split_specs([value]))
    if not specs:
        raise SpecError("--probing-tasks is empty.", f"use e.g. {DEFAULT_TASKS}.")
    return specs


def load_tasks(values: list[str]) -> list[ProbingTask]:
    names = split_specs(values)
    if not names:
        raise SpecError("--probing-tasks is empty.", f"use e.g. {DEFAULT_TASKS}.")
    return [load_task(name) for name in names]
