"""The wheel is enough to run the harness: benchmark modules, corpus and probing tasks ship
inside it, the SAE zoo in its own distribution. Installing the wheels into a fresh venv and
running from an empty directory is done by ``.ci/run`` (it needs a full install)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]


def _build(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def test_the_package_list_names_every_package_in_the_source_tree():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "interpscore").rglob("__init__.py")
    }
    mapped = {name: REPO / folder for name, folder in config["package-dir"].items() if name != ""}
    assert set(config["packages"]) == on_disk | set(mapped)
    assert all((folder / "__init__.py").is_file() for folder in mapped.values())


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> set[str]:
    with _build(REPO, tmp_path_factory.mktemp("wheel")) as wheel:
        return set(wheel.namelist())


def test_the_wheel_carries_the_benchmarks_corpus_and_tasks(wheel_names):
    for module in (REPO / "benchmarks").glob("*.py"):
        assert f"interpscore/benchmarks/{module.name}" in wheel_names
    assert "interpscore/bundled/corpus/eval.jsonl.xz" in wheel_names
    tasks = json.loads((REPO / "fixtures" / "tasks" / "tasks.json").read_text())
    for entry in tasks:
        assert f"interpscore/bundled/tasks/{entry['file']}" in wheel_names
    assert "interpscore/bundled/corpus/train.jsonl.xz" not in wheel_names
    assert not [n for n in wheel_names if n.endswith(".safetensors")]  # the zoo ships apart
    entry_points = next(n for n in wheel_names if n.endswith("entry_points.txt"))
    assert entry_points.startswith("interpscore-")


def test_the_zoo_wheel_carries_every_zoo_sae(tmp_path):
    with _build(REPO / "fixtures" / "saes", tmp_path) as wheel:
        names = set(wheel.namelist())
    saes = [p.name for p in (REPO / "fixtures" / "saes").iterdir() if (p / "cfg.json").is_file()]
    assert len(saes) == 8
    for name in saes:
        assert f"interpscore_zoo/{name}/cfg.json" in names
        assert f"interpscore_zoo/{name}/sae_weights.safetensors" in names
    assert not [n for n in names if n.endswith(".py") and not n.endswith("__init__.py")]
