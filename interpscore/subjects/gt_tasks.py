"""Templated tasks with known variables, as data, and their runs on a hooked model.

A task file (``fixtures/tasks/task_ground_truth.json``, built by
``fixtures/build_gt_tasks.py``; or a user's file of the same format) lists prompts with the
answer the model should give, a foil, the values of each attribute, the character span of
the word whose activation is read, the index of its counterfactual partner (the prompt with
the task's controlled attribute changed, whose answer is this prompt's foil), and a split.

:func:`prepare_task` tokenizes a task for one model (BOS first, the read position at the
span's last token; a prompt whose answer or foil is not one token is dropped with its
partner and counted) and runs every prompt once with the hook captured (the clean logit
differences and the read position's activations). :meth:`TaskRun.logit_diffs` then runs
only the layers after the hook with the read position's activation replaced, for any
batch of replacements: that is every patched run the metrics need.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from interpscore.errors import SpecError
from interpscore.evaluation.cache_keys import tensor_hash
from interpscore.subjects.hooked import HookedLM, HookSite
from interpscore.subjects.paths import tasks_dir
from interpscore.subjects.tokens import bos_id

FORMAT = "interpscore-task-ground-truth/1"
BUNDLED_FILE = "task_ground_truth.json"
BUNDLED_GT_TASKS = ("ioi", "capitals", "agreement")
_ITEM_KEYS = ("text", "span", "answer", "foil", "split", "attributes", "pair")


@dataclass(frozen=True)
class GTTask:
    """One templated task: its prompts and what is known about each."""

    name: str
    description: str
    controlled: str
    items: list[dict[str, Any]]
    source: str

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.items[0]["attributes"])


def _bad(source: str, problem: str) -> SpecError:
    return SpecError(
        f"Task file {source}: {problem}.",
        f"write it in the {FORMAT} format (see fixtures/build_gt_tasks.py).",
    )


def _check(task: dict[str, Any], source: str) -> GTTask:
    name = task.get("name")
    items = task.get("items")
    if not isinstance(name, str) or not isinstance(items, list) or len(items) < 2:
        raise _bad(source, "a task needs a name and at least two items")
    attributes = None
    for i, x in enumerate(items):
        where = f"task {name} item {i}"
        missing = [k for k in _ITEM_KEYS if k not in x]
        if missing:
            raise _bad(source, f"{where} has no {', '.join(missing)}")
        if not isinstance(x["pair"], int) or not 0 <= x["pair"] < len(items):
            raise _bad(source, f"{where} names pair {x['pair']!r}, not an item index")
        partner = items[x["pair"]]
        if partner.get("pair") != i or partner.get("split") != x["split"]:
            raise _bad(source, f"{where} and its pair do not name each other in one split")
        if x["split"] not in ("train", "test"):
            raise _bad(source, f"{where} has split {x['split']!r}, not train or test")
        span = x["span"]
        if not (isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)):
            raise _bad(source, f"{where} has span {span!r}, not [start, end] character offsets")
        start, end = span
        if not 0 <= start < end <= len(x["text"]):
            raise _bad(source, f"{where} has span {x['span']} outside its text")
        if attributes is None:
            attributes = list(x["attributes"])
        elif list(x["attributes"]) != attributes:
            raise _bad(source, f"{where} has attributes {list(x['attributes'])}, not {attributes}")
    controlled = task.get("controlled")
    if controlled not in (attributes or []):
        raise _bad(source, f"task {name} controls {controlled!r}, not one of {attributes}")
    return GTTask(name, str(task.get("description", "")), controlled, items, source)


def read_task_file(path: Path, source: str) -> list[GTTask]:
    """Every task of a task file, checked."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"Cannot read task file {source}: {exc}.", "check the path and JSON."
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _bad(source, f"its format is not {FORMAT!r}")
    return [_check(t, source) for t in payload.get("tasks", [])]


def load_gt_tasks(specs: tuple[str, ...]) -> list[GTTask]:
    """Bundled tasks by name, and every task of each ``file:PATH``."""
    out: list[GTTask] = []
    bundled: dict[str, GTTask] | None = None
    for spec in specs:
        if spec.startswith("file:"):
            out += read_task_file(Path(spec[5:]).expanduser(), spec)
            continue
        if bundled is None:
            tasks = read_task_file(tasks_dir() / BUNDLED_FILE, f"bundled:{BUNDLED_FILE}")
            bundled = {t.name: t for t in tasks}
        if spec not in bundled:
            raise SpecError(
                f"No bundled ground-truth task {spec!r}.",
                f"use {', '.join(BUNDLED_GT_TASKS)} or file:PATH.",
            )
        out.append(bundled[spec])
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise SpecError(f"Ground-truth tasks named twice: {names}.", "name each task once.")
    return out


def gt_task_specs(text: str) -> tuple[str, ...]:
    """``--task-gt-tasks`` values: comma-separated names, or one ``file:PATH``."""
    if text.startswith("file:"):
        return (text,)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BUNDLED_GT_TASKS]
    if unknown or not names:
        raise SpecError(
            f"Unknown ground-truth task(s) {', '.join(unknown) or '(none)'}.",
            f"use {', '.join(BUNDLED_GT_TASKS)} or file:PATH.",
        )
    return names


@dataclass
class TaskRun:
    """One task on one (model, hook): its usable prompts, their clean run, and the means to
    rerun them from the hook with the read position replaced."""

    task: GTTask
    lm: HookedLM
    site: HookSite
    sequences: list[list[int]]
    positions: np.ndarray
    answer: np.ndarray
    foil: np.ndarray
    pair: np.ndarray
    train: np.ndarray
    test: np.ndarray
    labels: dict[str, np.ndarray]
    values: dict[str, tuple[str, ...]]
    dropped: int
    batch_size: int
    show_progress: bool
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    #: Clean logit differences of test prompts (NaN for train prompts, never run through).
    clean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seconds: float = 0.0
    _hook_acts: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.task.name

    def _ids(self, rows: np.ndarray) -> torch.Tensor:
        """Token ids of prompts of one length (a batch never needs padding)."""
        return torch.tensor([self.sequences[i] for i in rows], device=self.lm.device)

    def _diffs(self, logits: torch.Tensor, rows: np.ndarray) -> np.ndarray:
        """logit(answer) − logit(foil) from last-position logits (batch, 1, vocab)."""
        at = logits[:, -1].float()
        picked = at[torch.arange(len(rows)), torch.from_numpy(self.answer[rows])]
        return (picked - at[torch.arange(len(rows)), torch.from_numpy(self.foil[rows])]).numpy()

    def _batches(self, rows: np.ndarray, desc: str):
        """Positions into ``rows`` in batches of prompts of equal length, so that the last
        token is every row's last position and only its logits are computed."""
        lengths = np.array([len(self.sequences[i]) for i in rows])
        batches = []
        for length in np.unique(lengths):
            same = np.flatnonzero(lengths == length)
            batches += [
                same[lo : lo + self.batch_size] for lo in range(0, len(same), self.batch_size)
            ]
        return tqdm(batches, desc=desc, unit="batch", disable=not self.show_progress, leave=False)

    @torch.inference_mode()
    def run_clean(self) -> None:
        """Train prompts to the hook only (their read activations); test prompts through the
        whole model (also their clean logit differences), keeping their hook activations
        for the patched runs."""
        start = time.perf_counter()
        d = self.lm.d_model
        self.x = np.zeros((len(self.sequences), d), dtype=np.float32)
        self.clean = np.full(len(self.sequences), np.nan)
        for chunk in self._batches(self.train, f"{self.name} train prompts"):
            rows = self.train[chunk]
            acts = self.lm.activations(self._ids(rows), self.site).to("cpu", torch.float32)
            self.x[rows] = acts[torch.arange(len(rows)), torch.from_numpy(self.positions[rows])]
        for chunk in self._batches(self.test, f"{self.name} test prompts"):
            rows = self.test[chunk]
            acts, logits = self.lm.clean_pass(self._ids(rows), self.site, last_only=True)
            acts = acts.to("cpu", torch.float32)
            self.x[rows] = acts[torch.arange(len(rows)), torch.from_numpy(self.positions[rows])]
            self.clean[rows] = self._diffs(logits, rows)
            for r, i in enumerate(rows):
                self._hook_acts[int(i)] = acts[r].clone()
        self.seconds += time.perf_counter() - start

    def inputs_hash(self) -> str:
        """A content hash of the prompts' token ids, read positions, answers, pairs, splits
        and labels: what the clean run and every patched run of them depend on."""
        text = json.dumps([self.name, self.sequences, self.values], sort_keys=True)
        arrays = [np.frombuffer(text.encode(), dtype=np.uint8), self.positions, self.answer]
        arrays += [self.foil, self.pair, self.train, self.test]
        return tensor_hash(*arrays, *(self.labels[a] for a in sorted(self.labels)))

    def clean_arrays(self) -> dict[str, np.ndarray]:
        """What :meth:`run_clean` computed, as named arrays (for the value cache; the test
        prompts' hook activations concatenated in test order)."""
        acts = [self._hook_acts[int(i)].numpy() for i in self.test]
        return {"x": self.x, "clean": self.clean, "hook_acts": np.concatenate(acts)}

    def restore_clean(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Take :meth:`run_clean`'s results from :meth:`clean_arrays` instead of running."""
        lengths = [len(self.sequences[i]) for i in self.test]
        acts = torch.from_numpy(arrays["hook_acts"])
        self.x, self.clean = arrays["x"], arrays["clean"]
        self._hook_acts = dict(zip((int(i) for i in self.test), acts.split(lengths), strict=True))

    @torch.inference_mode()
    def logit_diffs(self, rows: np.ndarray, replacement: np.ndarray, desc: str) -> np.ndarray:
        """Logit differences of test prompts ``rows`` when the read position's activation is
        ``replacement`` (len(rows), d); only the layers after the hook run."""
        start = time.perf_counter()
        out = []
        replacement = torch.as_tensor(replacement, dtype=torch.float32)
        for chunk in self._batches(rows, desc):
            chosen = rows[chunk]
            acts = torch.stack([self._hook_acts[int(i)] for i in chosen])
            acts[torch.arange(len(chosen)), torch.from_numpy(self.positions[chosen])] = replacement[
                chunk
            ]
            ids = self._ids(chosen)
            logits = self.lm.logits_from(ids, self.site, acts.to(self.lm.device), last_only=True)
            out.append(self._diffs(logits, chosen))
        self.seconds += time.perf_counter() - start
        return np.concatenate(out)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.task.source,
            "controlled": self.task.controlled,
            "attributes": {a: len(v) for a, v in self.values.items()},
            "prompts": {"train": len(self.train), "test": len(self.test)},
            "dropped_multi_token": self.dropped,
        }


def _single_token(tokenizer: Any, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def _read_position(tokenizer: Any, text: str, span: list[int]) -> tuple[list[int], int]:
    """The prompt's ids and the index (after BOS) of the token that ends the span."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    covering = [i for i, (s, e) in enumerate(offsets) if s < span[1] and e > span[0]]
    if not covering:
        raise SpecError(
            f"No token of {text!r} covers characters {span[0]}–{span[1]}.",
            "fix the span in the task file.",
        )
    return ids, covering[-1] + 1


def prepare_task(
    task: GTTask,
    lm: HookedLM,
    site: HookSite,
    batch_size: int = 32,
    show_progress: bool = True,
    clean: bool = True,
) -> TaskRun:
    """Tokenize a task for ``lm`` and run it clean once (see :class:`TaskRun`; with
    ``clean=False`` the caller runs or restores the clean run)."""
    tokenizer = lm.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise SpecError(
            f"Ground-truth tasks need a fast tokenizer (character offsets); {lm.name} has "
            f"{type(tokenizer).__name__}.",
            "load the model with a fast tokenizer (tokenizer.json).",
        )
    bos = bos_id(tokenizer)
    usable = []
    for x in task.items:
        answer, foil = _single_token(tokenizer, x["answer"]), _single_token(tokenizer, x["foil"])
        usable.append(answer is not None and foil is not None and answer != foil)
    keep = [i for i, x in enumerate(task.items) if usable[i] and usable[x["pair"]]]
    new_index = {old: new for new, old in enumerate(keep)}
    sequences, positions, answer, foil, pair, splits = [], [], [], [], [], []
    for old in keep:
        x = task.items[old]
        ids, position = _read_position(tokenizer, x["text"], x["span"])
        sequences.append([bos, *ids])
        positions.append(position)
        answer.append(_single_token(tokenizer, x["answer"]))
        foil.append(_single_token(tokenizer, x["foil"]))
        pair.append(new_index[x["pair"]])
        splits.append(x["split"])
    values: dict[str, tuple[str, ...]] = {}
    labels: dict[str, np.ndarray] = {}
    for attribute in task.attributes:
        column = [str(task.items[old]["attributes"][attribute]) for old in keep]
        values[attribute] = tuple(sorted(set(column)))
        index = {v: j for j, v in enumerate(values[attribute])}
        labels[attribute] = np.array([index[v] for v in column], dtype=np.int64)
    split = np.array(splits)
    run = TaskRun(
        task=task,
        lm=lm,
        site=site,
        sequences=sequences,
        positions=np.array(positions, dtype=np.int64),
        answer=np.array(answer, dtype=np.int64),
        foil=np.array(foil, dtype=np.int64),
        pair=np.array(pair, dtype=np.int64),
        train=np.flatnonzero(split == "train"),
        test=np.flatnonzero(split == "test"),
        labels=labels,
        values=values,
        dropped=len(task.items) - len(keep),
        batch_size=batch_size,
        show_progress=show_progress,
    )
    if len(run.train) < 2 or len(run.test) < 2:
        raise SpecError(
            f"Ground-truth task {task.name}: {len(run.train)} train and {len(run.test)} test "
            f"prompts have single-token answers for {lm.name}.",
            "use a task whose answers are single tokens for this tokenizer.",
        )
    if clean:
        run.run_clean()
    return run
