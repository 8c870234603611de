"""Settings declared once: frozen dataclasses whose fields carry their command-line options.

A field made with :func:`option` has its default, its flag, its help text and an argparse
``type=`` function in one place. The pytest plugin turns every declared field into an
option of its group, so a bad value fails while the command line is parsed, before any
model loads; :func:`from_namespace` builds the dataclass from the parsed values, and
:func:`to_dict` gives what the report records. Defaults live in the dataclass only.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from interpscore.errors import InterpScoreError


@dataclass(frozen=True)
class Option:
    """How a settings field appears on the command line."""

    flag: str
    help: str
    metavar: str | None = None
    type: Callable[[str], Any] | None = None
    action: str | None = None
    choices: tuple[str, ...] | None = None
    combine: Callable[[list[Any]], Any] | None = None
    shown: str | None = None

    @property
    def dest(self) -> str:
        name = self.flag.lstrip("-").replace("-", "_")
        return name.removeprefix("no_") if self.action == "store_false" else name


def option(default: Any, flag: str, help: str, **kwargs: Any) -> Any:
    """A dataclass field with a default and its command-line option (see :class:`Option`)."""
    return dataclasses.field(default=default, metadata={"option": Option(flag, help, **kwargs)})


def declared(cls: type) -> list[tuple[dataclasses.Field[Any], Option]]:
    """The fields of a settings dataclass that have a command-line option."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(cls) if "option" in f.metadata]


def argparse_kwargs(fld: dataclasses.Field[Any], opt: Option) -> dict[str, Any]:
    """Keyword arguments for ``addoption``/``add_argument`` of one declared field."""
    kwargs: dict[str, Any] = {"dest": opt.dest, "help": _help(fld, opt)}
    if opt.action in ("store_true", "store_false"):
        kwargs |= {"action": opt.action, "default": fld.default}
        return kwargs
    if opt.action == "append":
        kwargs |= {"action": "append", "default": []}
    else:
        kwargs["default"] = fld.default
    for name in ("metavar", "type", "choices"):
        if getattr(opt, name) is not None:
            kwargs[name] = getattr(opt, name)
    return kwargs


def _help(fld: dataclasses.Field[Any], opt: Option) -> str:
    if opt.action in ("store_true", "store_false") or fld.default is None:
        return opt.help
    default = fld.default
    text = opt.shown or (",".join(map(str, default)) if isinstance(default, tuple) else default)
    return f"{opt.help} (default: {text})".replace("%", "%%")


def from_namespace(cls: type, namespace: Any, **fixed: Any) -> Any:
    """Build ``cls`` from parsed options; fields without an option keep their default
    unless given in ``fixed``."""
    values = dict(fixed)
    for fld, opt in declared(cls):
        if fld.name in values:
            continue
        value = getattr(namespace, opt.dest, fld.default)
        if opt.action == "append":
            value = (opt.combine or tuple)(value) if value else fld.default
        values[fld.name] = value
    return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    return value


def to_dict(settings: Any, skip: Iterable[str] = ()) -> dict[str, Any]:
    """A settings object as JSON-ready values (what the report's run block records)."""
    return {
        f.name: _plain(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if f.name not in skip and not f.metadata.get("internal")
    }


def internal(default: Any) -> Any:
    """A field that is not recorded in reports (how a run shows progress, say)."""
    return dataclasses.field(default=default, metadata={"internal": True})


# argparse ``type=`` functions: each raises ArgumentTypeError with the fix.


def positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a parser that raises :class:`InterpScoreError` as an argparse ``type=``."""

    def parse_option(text: str) -> Any:
        try:
            return parse(text)
        except InterpScoreError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_option.__name__ = getattr(parse, "__name__", "value")
    return parse_option
