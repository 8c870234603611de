"""pytest-xdist within a node: one worker per device (``--devices``) and group dispatch.

Every SAE's tests belong to the group of its (model, hook) (with its model-level controls),
and a run-level family's tests to their module's group: a worker takes a whole group, so the
group's language-model pass runs once, on one worker; an idle worker takes the next group,
largest first. xdist's own ``loadgroup`` finds groups in test ids, which pytest 9.2 no
longer lets it change, so the workers write each test's group to a folder the controller
named, and the controller's scheduler (xdist's ``LoadScopeScheduling``) reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from interpscore.cluster.plan import pass_groups
from interpscore.pytest_plugin.options import SETTINGS, is_worker, specs

GROUPS = pytest.StashKey[dict[str, str]]()
TABLE_DIR = pytest.StashKey[Path]()
TABLE_KEY = "interpscore_groups"


def sae_of(item: pytest.Item) -> str | None:
    """The SAE id a test is parametrized with (None for other tests)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    value = params.get("sae_id")
    return value if isinstance(value, str) else None


def is_run_level(item: pytest.Item) -> bool:
    """A test of a run-level family: it uses the evaluator or records a run-level result,
    but evaluates no SAE of the run (ground truth on synthetic data)."""
    names = set(item.fixturenames)
    return "sae_id" not in names and bool(names & {"evaluator", "record_run_result"})


def xdist_group(config: pytest.Config, item: pytest.Item) -> str | None:
    """The group of a test: its SAE's (model, hook) group, for a run-level test its module's
    (the tests of a family share its session-wide state); None for other tests."""
    sae_id = sae_of(item)
    if sae_id is None:
        return f"interpscore-run-{item.path.stem}" if is_run_level(item) else None
    if GROUPS not in config.stash:
        config.stash[GROUPS] = pass_groups(specs(config), config.stash[SETTINGS].model_override)
    return config.stash[GROUPS][sae_id]


def distributing(config: pytest.Config) -> bool:
    """Whether this process is an xdist controller about to start workers."""
    return getattr(config.option, "dist", "no") != "no" and bool(getattr(config.option, "tx", None))


def _configure_devices(config: pytest.Config) -> None:
    """``--devices 0,1``: as ``--tx popen//env:CUDA_VISIBLE_DEVICES=0 --tx …=1``."""
    devices = config.option.devices
    if not hasattr(config.option, "numprocesses"):
        raise pytest.UsageError("--devices needs pytest-xdist. Fix: pip install pytest-xdist.")
    numprocesses = config.option.numprocesses
    if (numprocesses and numprocesses != len(devices)) or (config.option.tx and not numprocesses):
        raise pytest.UsageError(
            f"--devices starts {len(devices)} worker(s); -n/--tx ask for others. "
            "Fix: pass --devices alone."
        )
    device = str(config.option.device)
    if device.startswith("cuda:") and device != "cuda:0":
        raise pytest.UsageError(
            f"--device {device} with --devices: each worker sees one device, as cuda:0. "
            "Fix: pass --device cuda."
        )
    config.option.tx = [f"popen//env:CUDA_VISIBLE_DEVICES={d}" for d in devices]
    config.option.numprocesses = len(devices)
    if config.option.dist in ("no", "load"):
        config.option.dist = "loadgroup"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before xdist decides whether to distribute: workers per device, group dispatch."""
    if is_worker(config):
        return
    if config.option.devices is not None:
        _configure_devices(config)
    elif distributing(config) and config.option.dist == "load":
        config.option.dist = "loadgroup"  # each group's tests on one worker
    if distributing(config) and config.option.dist == "loadgroup":
        config.stash[TABLE_DIR] = Path(tempfile.mkdtemp(prefix="interpscore-xdist-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(TABLE_DIR, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each xdist worker where to write the groups of its tests."""
    folder = node.config.stash.get(TABLE_DIR, None)
    if folder is not None:
        node.workerinput[TABLE_KEY] = str(folder)


def _group_of(item: pytest.Item) -> str | None:
    """The group xdist's loadgroup would give a test: its xdist_group marks."""
    names = sorted(
        {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
    )
    return "_".join(names) or None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """On a worker, before it reports its collection: write every test's group."""
    config = session.config
    folder = getattr(config, "workerinput", {}).get(TABLE_KEY)
    if folder is None:
        return
    table = {item.nodeid: _group_of(item) for item in session.items}
    worker = config.workerinput["workerid"]  # type: ignore[attr-defined]
    path = Path(folder) / f"{worker}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in table.items() if v is not None}))
    os.replace(tmp, path)


class GroupTable:
    """Test id -> group, as the workers wrote it (read once, when scheduling starts)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.table: dict[str, str] | None = None

    def __call__(self, nodeid: str) -> str | None:
        if self.table is None:
            self.table = {}
            for path in sorted(self.folder.glob("*.json")):
                self.table.update(json.loads(path.read_text()))
        return self.table.get(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups the workers wrote."""
    folder = config.stash.get(TABLE_DIR, None)
    if folder is None or config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """Whole groups to one worker each, largest first, the next to whoever is idle."""

        def __init__(self, config: pytest.Config, log: Any, groups: GroupTable) -> None:
            super().__init__(config, log)
            self.groups = groups

        def _split_scope(self, nodeid: str) -> str:
            return self.groups(nodeid) or nodeid

    return GroupScheduling(config, log, GroupTable(folder))
