"""A report's ``run`` block turned back into the pytest options that produce it.

The run block is written from the settings dataclasses (:func:`interpscore.settings.to_dict`
of :class:`~interpscore.evaluation.settings.RunSettings` and of every family's settings,
under the family's name); each field that has a command-line option carries its flag in
its :class:`~interpscore.settings.Option`. :func:`run_options` walks the same declarations
backwards, so a re-run uses exactly the settings the report records, and a family that
adds options is covered without being named here (tests/test_verify.py checks the round
trip options -> run block -> options).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator
from typing import Any

from interpscore.errors import InterpScoreError
from interpscore.evaluation.settings import RunSettings
from interpscore.settings import Option, declared, to_dict
from interpscore.suites import REGISTRY

#: The run block's ``formula`` is the version only; the report's ``formula`` object says more.
FORMULA_FIELD = "formula"
#: Words an option's parser may turn into None ("all" latents, "none" for no cache).
_NONE_WORDS = ("all", "none")


def _sections() -> Iterator[tuple[str | None, type]]:
    """(key of the block's section, settings dataclass): the run's own fields at the top
    level, each family's under its name."""
    yield None, RunSettings
    for suite in REGISTRY.suites():
        if suite.settings_type is not None:
            yield suite.name, suite.settings_type


def _none_word(flag: str, opt: Option) -> str:
    """The word that ``opt`` parses to None (``--autointerp-latents all``)."""
    for word in _NONE_WORDS:
        if opt.type is None:
            break
        try:
            if opt.type(word) is None:
                return word
        except (argparse.ArgumentTypeError, ValueError, InterpScoreError):
            continue
    raise InterpScoreError(
        f"The run block's {flag} is null, which no value of {flag} gives.",
        "regenerate the report with this version of interpscore.",
    )


def field_options(fld: dataclasses.Field[Any], opt: Option, value: Any) -> list[str]:
    """The command-line words that make one declared field ``value``."""
    if opt.action == "store_true":
        return [opt.flag] if value else []
    if opt.action == "store_false":
        return [] if value else [opt.flag]
    if value is None:
        return [] if fld.default is None else [f"{opt.flag}={_none_word(opt.flag, opt)}"]
    if isinstance(value, (list, tuple)):
        if opt.action == "append":  # one item per flag: an item may itself hold commas
            return [f"{opt.flag}={item}" for item in value]
        return [f"{opt.flag}={','.join(str(item) for item in value)}"]
    if isinstance(value, (dict, bool)):
        raise InterpScoreError(
            f"The run block's {opt.flag} is {value!r}, which is not an option value.",
            "regenerate the report with this version of interpscore.",
        )
    return [f"{opt.flag}={value}"]


def run_options(run: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Pytest options that reproduce ``run`` (a report's run block), flags in ``skip``
    left out. Keys the block lacks keep their defaults; ``formula`` is left to the caller
    (the block records only its version; see :func:`formula_option`)."""
    if not isinstance(run, dict):
        raise InterpScoreError("The report's run block is not an object.", "regenerate it.")
    options: list[str] = []
    for section, settings_type in _sections():
        block = run if section is None else run.get(section)
        if not isinstance(block, dict):
            continue
        for fld, opt in declared(settings_type):
            if fld.name not in block or opt.flag in skip:
                continue
            if section is None and fld.name == FORMULA_FIELD:
                continue
            options.extend(field_options(fld, opt, block[fld.name]))
    return options


def default_options(skip: tuple[str, ...] = ()) -> set[str]:
    """The options every setting's default gives: what a run block that lacks a key (one
    written before that setting existed) stands for."""
    options: set[str] = set()
    for section, settings_type in _sections():
        defaults = to_dict(settings_type(), skip=(FORMULA_FIELD,) if section is None else ())
        block = defaults if section is None else {section: defaults}
        options.update(run_options(block, skip))
    return options
