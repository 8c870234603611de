"""``interpscore cache list|clear``: what the value cache holds, and emptying it."""

from __future__ import annotations

import argparse
import time
from typing import Any

from interpscore.evaluation.cache import Entry, Store, default_dir, format_size


def key_summary(entry: Entry, width: int = 60) -> str:
    """The key's short fields (long ones, like token hashes, are left out)."""
    parts = [
        f"{name}={value}"
        for name, value in sorted(entry.key.items())
        if isinstance(value, (str, int, float, bool)) and len(str(value)) <= 40
    ]
    text = " ".join(parts) or "(unreadable manifest)"
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_cache(args: argparse.Namespace) -> int:
    store = Store(args.cache_dir or default_dir())
    if args.action == "clear":
        removed = store.clear(args.kind)
        size = format_size(sum(e.size for e in removed))
        noun = "entry" if len(removed) == 1 else "entries"
        print(f"{store.root}: removed {len(removed)} {noun} ({size}).")
        return 0
    entries = store.entries(args.kind)
    print(f"{'kind':<16} {'size':>9}  {'last used':<16}  key")
    for entry in sorted(entries, key=lambda e: -e.last_used):
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        print(f"{entry.kind:<16} {format_size(entry.size):>9}  {used:<16}  {key_summary(entry)}")
    noun = "entry" if len(entries) == 1 else "entries"
    total = format_size(sum(e.size for e in entries))
    print(f"{store.root}: {len(entries)} {noun}, {total}.")
    return 0


def add_cache_parser(sub: Any) -> None:
    """The ``cache`` subcommand (called from :func:`interpscore.cli.build_parser`)."""
    p = sub.add_parser(
        "cache",
        help="List or clear the cache of SAE-independent values (activations, controls).",
        description="The evaluation caches what does not depend on the SAE under test, keyed "
        "by content hashes; this lists its entries and total size, or deletes them.",
    )
    p.add_argument("action", choices=["list", "clear"], nargs="?", default="list")
    p.add_argument("--kind", default=None, help="only entries of this kind (e.g. task_acts)")
    p.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="the cache folder (default: $INTERPSCORE_VALUE_CACHE, else values/ under "
        "$INTERPSCORE_CACHE or the XDG cache)",
    )
    p.set_defaults(func=cmd_cache)
