"""The "InterpScore SAE evaluation" option group, and the settings parsed from it.

The run's options come from :class:`~interpscore.evaluation.settings.RunSettings` and each
family's from its settings dataclass (see :mod:`interpscore.settings`), so a family adds
options by declaring fields; values are checked by argparse ``type=`` functions while the
command line is parsed, before any model loads.
"""

from __future__ import annotations

from typing import Any

import pytest

from interpscore.cluster.plan import ShardPlan, plan_shards, single_plan
from interpscore.errors import InterpScoreError
from interpscore.evaluation.settings import RunSettings
from interpscore.results.gate import parse_tolerance, parse_tolerance_item
from interpscore.settings import argparse_kwargs, checked, declared, from_namespace
from interpscore.subjects.loading import SAESpec, parse_sae_spec, unique_ids
from interpscore.subjects.zoo import zoo_specs
from interpscore.suites import REGISTRY, Suite

GROUP = ("interpscore", "InterpScore SAE evaluation")
SETTINGS = pytest.StashKey[RunSettings]()
SUITE_SETTINGS = pytest.StashKey[dict[str, Any]]()
SPECS = pytest.StashKey[list[SAESpec]]()
PLAN = pytest.StashKey[ShardPlan]()


def _add_declared(group: Any, settings_type: type | None) -> None:
    for fld, opt in declared(settings_type) if settings_type is not None else []:
        group.addoption(opt.flag, **argparse_kwargs(fld, opt))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(*GROUP)
    group.addoption(
        "--sae",
        action="append",
        default=[],
        metavar="SPEC",
        help="SAE to evaluate (repeatable): a local sae-lens or dictionary_learning directory, "
        "REPO_ID[/PATH][@REVISION] on the hub, or a sae-lens RELEASE/SAE_ID; NAME=SPEC sets "
        "the test id. Default: the bundled zoo.",
    )
    _add_declared(group, RunSettings)
    for suite in REGISTRY.suites():
        _add_declared(group, suite.settings_type)

    def late(suite: Suite) -> None:  # a family registered by a conftest.py
        _add_declared(group, suite.settings_type)

    REGISTRY.on_register(late, key="pytest-options")
    group.addoption(
        "--interpscore-json",
        default="reports/runs/interpscore.json",
        metavar="PATH",
        help="Where to write the JSON report; the Markdown and figure go beside it (default: "
        "reports/runs/interpscore.json; the committed reference reports/interpscore.json is "
        "only written when named here).",
    )
    group.addoption(
        "--interpscore-baseline",
        default=None,
        metavar="PATH",
        help="Regression gate: fail the session when the InterpScore or a component drops "
        "below this earlier interpscore.json by more than the tolerance.",
    )
    group.addoption(
        "--gate-tolerance",
        default=0.0,
        type=checked(parse_tolerance),
        metavar="X",
        help="Allowed drop for every compared value (default: 0).",
    )
    group.addoption(
        "--gate-tolerance-for",
        action="append",
        default=[],
        type=checked(parse_tolerance_item),
        metavar="NAME=X",
        help="Allowed drop for one component or interp_score (repeatable).",
    )
    group.addoption(
        "--gate-ignore-intervals",
        action="store_true",
        default=False,
        help="Fail on any drop beyond the tolerance, even inside the 95%% interval.",
    )
    group.addoption(
        "--speed",
        action="store_true",
        default=False,
        help="Run the speed benchmarks (marker 'speed', benchmarks/speed: the shared pass "
        "against SAELens' run_evals); without it they are deselected.",
    )
    group.addoption(
        "--speed-n",
        default=None,
        type=checked(parse_speed_n),
        metavar="N[,N...]",
        help="With --speed: only these numbers of SAEs (default: every one, 1,4,10).",
    )


def parse_speed_n(text: str) -> tuple[int, ...]:
    """``1,4``: the numbers of SAEs the speed benchmarks run with."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise InterpScoreError(
            f"--speed-n {text!r} is not a comma list of positive integers.", "use e.g. 1,4,10."
        )
    return values


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def specs(config: pytest.Config) -> list[SAESpec]:
    """The session's SAE specs, parsed once (the bundled zoo when --sae is absent); with
    ``--shard I/N`` only those of shard I (see :func:`interpscore.cluster.plan.plan_shards`)."""
    if SPECS not in config.stash:
        try:
            if config.option.sae:
                parsed = [parse_sae_spec(text) for text in config.option.sae]
            else:
                parsed = zoo_specs(config.stash[SETTINGS].model_controls)
        except InterpScoreError as exc:
            raise pytest.UsageError(str(exc)) from exc
        parsed = unique_ids(parsed)
        shard = getattr(config.option, "shard", None)
        run = config.stash[SETTINGS]
        plan = (
            plan_shards(parsed, shard.count, run.model_override, run.controls)
            if shard is not None
            else single_plan(parsed)
        )
        config.stash[PLAN] = plan
        index = shard.index if shard is not None else 1
        config.stash[SPECS] = [s for s in parsed if plan.assignment[s.id] == index]
    return config.stash[SPECS]


def shard_plan(config: pytest.Config) -> ShardPlan:
    """Which shard evaluates each SAE of the whole run (every shard's SAEs, not only ours)."""
    specs(config)
    return config.stash[PLAN]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "interpscore_metric(name): the test measures and records the named metric"
    )
    config.addinivalue_line(
        "markers", "interpscore_sanity: a sanity assertion about the evaluated subjects"
    )
    config.addinivalue_line(
        "markers",
        "speed: a speed benchmark, run only with --speed (deselected otherwise, so not in "
        "the main job)",
    )
    config.stash[SETTINGS] = from_namespace(
        RunSettings, config.option, show_progress=not is_worker(config)
    )
    config.stash[SUITE_SETTINGS] = {
        suite.name: from_namespace(suite.settings_type, config.option)
        for suite in REGISTRY.suites()
        if suite.settings_type is not None
    }
    if config.option.sae:
        specs(config)
