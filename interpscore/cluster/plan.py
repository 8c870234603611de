"""What an SAE is and costs before it loads; shards balanced by that cost; the groups that
pytest-xdist workers take whole.

Everything here reads local files only (an SAE's ``cfg.json`` or ``config.json``, a local
model's ``config.json``), never the network, so every machine that sees the same files
computes the same plan: shard ``I/N`` on one node and shard ``J/N`` on another never both
take, or both leave, an SAE. SAEs whose config is not local (hub repos, sae-lens releases)
or cannot be read are "unplanned": they count as the median planned cost and share one
xdist group.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.subjects.loading import SAESpec
from interpscore.subjects.models import parse_model_ref

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_-]*$")
_LAYER = re.compile(r"blocks\.(\d+)\.")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
UNPLANNED_GROUP = "interpscore-unplanned"

#: Assumed shape of a model whose config is not a local file: layers after the hook (the
#: patched runs execute only those) and vocabulary (the unembedding of every run).
DEFAULT_LAYERS_AFTER = 12
DEFAULT_VOCAB = 128_000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as Slurm array ids and CI matrices count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N`` with 1 <= I <= N."""
    match = _SHARD.match(text)
    if not match:
        raise InterpScoreError(f"--shard {text!r} is not I/N.", "give e.g. --shard 1/4.")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise InterpScoreError(
            f"--shard {text}: the shard index must lie in 1..{max(count, 1)}.",
            "number shards from 1, e.g. --shard 1/4 … --shard 4/4.",
        )
    return Shard(index, count)


def parse_devices(text: str) -> tuple[str, ...]:
    """``all`` (every CUDA device torch sees) or a comma list of device ids or UUIDs."""
    if text.strip() == "all":
        import torch

        count = torch.cuda.device_count()
        if count == 0:
            raise InterpScoreError(
                "--devices all: torch sees no CUDA device on this machine.",
                "list device ids (--devices 0,1) or run without --devices.",
            )
        return tuple(str(i) for i in range(count))
    devices = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [d for d in devices if not _DEVICE_ID.match(d)]
    if not devices or bad:
        raise InterpScoreError(
            f"--devices {text!r} is not a comma list of device ids.",
            "give e.g. --devices 0,1,2,3 or --devices all.",
        )
    if len(set(devices)) != len(devices):
        raise InterpScoreError(f"--devices {text} names a device twice.", "give each device once.")
    return devices


@dataclass(frozen=True)
class SAEFacts:
    """What an SAE's config says, read without loading its weights."""

    id: str
    model: str
    hook: str
    d_in: int
    d_sae: int
    control_of: str | None = None

    @property
    def layer(self) -> int | None:
        match = _LAYER.match(self.hook)
        return int(match.group(1)) if match else None


def _read_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _model(name: Any, variant: Any, seed: Any, override: str | None) -> str:
    """The model an SAE will be evaluated on (``--model`` replaces its base)."""
    base = override or name
    if not base:
        raise ValueError("no model")
    return str(parse_model_ref(f"{base}::{variant}@{seed or 0}" if variant else str(base)))


def peek(spec: SAESpec, model_override: str | None = None) -> SAEFacts | None:
    """The facts of a local SAE (sae-lens or dictionary_learning folder), or None when its
    config is not local or cannot be read (loading it will then say what is wrong)."""
    if spec.kind not in ("saelens-dir", "dictionary-learning-dir"):
        return None
    folder = Path(spec.location)
    try:
        if spec.kind == "saelens-dir":
            cfg = _read_object(folder / "cfg.json")
            if cfg is None:
                return None
            meta = cfg.get("metadata") or {}

            def get(key: str) -> Any:
                return meta.get(key, cfg.get(key))

            if not get("hook_name"):
                return None
            return SAEFacts(
                spec.id,
                _model(
                    get("model_name"),
                    get("model_variant"),
                    get("model_variant_seed"),
                    model_override,
                ),
                str(get("hook_name")),
                int(cfg["d_in"]),
                int(cfg["d_sae"]),
                str(get("control_of")) if get("control_of") else None,
            )
        trainer = (_read_object(folder / "config.json") or {}).get("trainer")
        if not isinstance(trainer, dict):
            return None
        submodule = str(trainer.get("submodule_name", ""))
        site = "resid_pre" if "resid_pre" in submodule else "resid_post"
        return SAEFacts(
            spec.id,
            _model(trainer.get("lm_name", ""), None, None, model_override),
            f"blocks.{int(trainer['layer'])}.hook_{site}",
            int(trainer["activation_dim"]),
            int(trainer["dict_size"]),
        )
    except (KeyError, TypeError, ValueError, InterpScoreError):
        return None


def _model_shape(model: str) -> tuple[int, int] | None:
    """(layers, vocabulary) of a model whose ``config.json`` is a local file."""
    base = model.partition("::")[0]
    config = _read_object(Path(base) / "config.json") if base else None
    if config is None:
        return None
    keys = ("num_hidden_layers", "n_layer", "num_layers")
    layers = next((config[k] for k in keys if k in config), None)
    vocab = config.get("vocab_size")
    if not isinstance(layers, int) or not isinstance(vocab, int):
        return None
    return layers, vocab


def expected_cost(facts: SAEFacts, controls: bool = True) -> float:
    """Multiply-adds per evaluated token of one SAE, from its config alone.

    Per subject (the SAE, and its seeded random-init control unless ``--no-controls``): the
    encoder and decoder (2·d_in·d_sae each) and the language model patched at the hook,
    which runs the layers after it (about 12·d_in² per block: attention and a 4x MLP) and
    the unembedding (d_in·vocab). An SAE of a randomized transformer (``control_of``) has
    no random-init control but runs its own model's clean and ablated passes. The shape of
    the model comes from its local ``config.json``, else DEFAULT_LAYERS_AFTER and
    DEFAULT_VOCAB. Only ratios between SAEs matter.
    """
    d = facts.d_in
    shape = _model_shape(facts.model)
    layer = facts.layer or 0
    layers_after = max(shape[0] - layer, 1) if shape else DEFAULT_LAYERS_AFTER
    vocab = shape[1] if shape else DEFAULT_VOCAB
    tail = 12 * d * d * layers_after + d * vocab
    subject = 4 * d * facts.d_sae + tail
    if facts.control_of is not None:
        full = 12 * d * d * (shape[0] if shape else layer + DEFAULT_LAYERS_AFTER) + d * vocab
        return float(subject + 2 * full)
    return float(subject * (2 if controls else 1))


def _root(sae_id: str, facts: Mapping[str, SAEFacts | None]) -> str:
    """The SAE a model-level control belongs with (itself for an ordinary SAE)."""
    seen = {sae_id}
    current = sae_id
    while True:
        info = facts.get(current)
        parent = info.control_of if info is not None else None
        if parent is None or parent not in facts or parent in seen:
            return current
        seen.add(parent)
        current = parent


def bundles(ids: Iterable[str], facts: Mapping[str, SAEFacts | None]) -> list[list[str]]:
    """SAEs that must run in one process: each SAE with the SAEs of randomized transformers
    that control it (its report compares with them), in the order given."""
    out: dict[str, list[str]] = {}
    for sae_id in ids:
        out.setdefault(_root(sae_id, facts), []).append(sae_id)
    return list(out.values())


@dataclass(frozen=True)
class ShardPlan:
    """Which shard evaluates each SAE, and the expected costs behind the choice."""

    count: int
    assignment: dict[str, int]
    costs: dict[str, float]

    @property
    def plan_id(self) -> str:
        """Names this plan: the same SAEs in the same number of shards give the same id."""
        text = json.dumps([self.count, sorted(self.assignment.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def ids_of(self, index: int) -> list[str]:
        return [sae_id for sae_id, shard in self.assignment.items() if shard == index]

    def loads(self) -> list[float]:
        """Expected cost of every shard, shard 1 first."""
        totals = [0.0] * self.count
        for sae_id, shard in self.assignment.items():
            totals[shard - 1] += self.costs.get(sae_id, 0.0)
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan_id,
            "shards": self.count,
            "saes": {
                k: {"shard": v, **({"cost": self.costs[k]} if k in self.costs else {})}
                for k, v in self.assignment.items()
            },
        }


def single_plan(specs: list[SAESpec]) -> ShardPlan:
    """Every SAE in one shard (a run without ``--shard``); no costs are needed."""
    return ShardPlan(1, {s.id: 1 for s in specs}, {})


def plan_shards(
    specs: list[SAESpec],
    count: int,
    model_override: str | None = None,
    controls: bool = True,
) -> ShardPlan:
    """Split the SAEs into ``count`` shards of equal expected cost that each touch as few
    (model, hook) passes as they can: the bundles (an SAE with its model-level controls) are
    ordered by pass group, then by id, and the sequence is cut where the running cost
    crosses each multiple of total/count. Every shard is within one bundle's cost of the
    mean; a pass group is split only where a cut falls inside it, so one smaller than a
    shard spans at most two; the result depends only on the specs and local files (not on
    their order)."""
    facts = {s.id: peek(s, model_override) for s in specs}
    known = [expected_cost(f, controls) for f in facts.values() if f is not None]
    unknown_cost = statistics.median(known) if known else 1.0
    costs = {
        k: expected_cost(f, controls) if f is not None else unknown_cost for k, f in facts.items()
    }
    groups = _components(facts)
    units = sorted(bundles(sorted(facts), facts), key=lambda unit: (groups[unit[0]], unit[0]))
    total = sum(costs.values())
    assignment: dict[str, int] = {}
    before = 0.0
    for unit in units:
        cost = sum(costs[i] for i in unit)
        middle = before + cost / 2
        shard = min(count, int(middle * count / total) + 1) if total > 0 else 1
        assignment.update(dict.fromkeys(unit, shard))
        before += cost
    ordered = {s.id: assignment[s.id] for s in specs}
    return ShardPlan(count, ordered, costs)


def pass_groups(specs: list[SAESpec], model_override: str | None = None) -> dict[str, str]:
    """The xdist group of every SAE: SAEs on one (model, hook) share the language-model pass,
    so they go to one worker together, with the model-level controls of any of them; SAEs
    whose config is not local share one group (their hooks are unknown until they load)."""
    return _components({s.id: peek(s, model_override) for s in specs})


def _components(facts: Mapping[str, SAEFacts | None]) -> dict[str, str]:
    """SAE id -> the name of its pass group (see :func:`pass_groups`)."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for sae_id, info in facts.items():
        if info is None:
            union(f"sae:{sae_id}", UNPLANNED_GROUP)
            continue
        union(f"sae:{sae_id}", _group_name(info.model, info.hook))
        if info.control_of in facts:
            union(f"sae:{sae_id}", f"sae:{info.control_of}")
    names: dict[str, str] = {}
    for node in sorted(parent):
        if not node.startswith("sae:"):
            names.setdefault(find(node), node)
    return {sae_id: names[find(f"sae:{sae_id}")] for sae_id in facts}


def _group_name(model: str, hook: str) -> str:
    """A readable group name for xdist (no ``@`` or ``]``, which xdist parses)."""
    digest = hashlib.sha256(f"{model}\n{hook}".encode()).hexdigest()[:8]
    label = _UNSAFE.sub("-", f"{Path(model.partition('::')[0]).name}-{hook}").strip("-")
    return f"interpscore-{label}-{digest}"
