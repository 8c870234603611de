"""Where the bundled data is found: package data for the corpus and tasks; for the zoo
$INTERPSCORE_FIXTURES, a checkout's fixtures/saes, or the installed interpscore-zoo."""

from __future__ import annotations

import pytest

from interpscore.errors import SpecError
from interpscore.subjects import paths


def test_corpus_and_tasks_are_package_data():
    assert paths.bundled_corpus().is_file()
    assert (paths.tasks_dir() / "tasks.json").is_file()
    assert paths.package_dir("interpscore.bundled.corpus") == paths.bundled_corpus().parent


def test_the_installed_zoo_is_used_without_a_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.FIXTURES_ENV, raising=False)
    monkeypatch.setattr(paths, "CHECKOUT_FIXTURES", tmp_path / "no-checkout")
    site = tmp_path / "site"
    (site / "interpscore_zoo" / "sae-a").mkdir(parents=True)
    (site / "interpscore_zoo" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    assert paths.zoo_dir() == site / "interpscore_zoo"


def test_no_zoo_anywhere_is_a_one_line_error_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.FIXTURES_ENV, raising=False)
    monkeypatch.setattr(paths, "CHECKOUT_FIXTURES", tmp_path / "no-checkout")
    monkeypatch.setattr(paths, "ZOO_MODULE", "interpscore_zoo_absent")
    with pytest.raises(SpecError, match="pip install interpscore-zoo"):
        paths.zoo_dir()


def test_the_override_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.FIXTURES_ENV, str(tmp_path))
    with pytest.raises(SpecError, match=r"\$INTERPSCORE_FIXTURES/saes .* does not exist"):
        paths.zoo_dir()
    (tmp_path / "saes").mkdir()
    assert paths.zoo_dir() == tmp_path / "saes"
