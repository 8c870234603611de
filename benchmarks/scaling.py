"""Peak memory and wall time of real runs as the evaluation window and the SAE grow.

Each measurement is a child ``pytest benchmarks`` run of its own, so its peak resident
memory (``os.wait4``'s ``ru_maxrss``) is that run's alone::

    python benchmarks/scaling.py tokens --tokens 8192 65536 262144   # memory flat in tokens?
    python benchmarks/scaling.py wide --d-sae 65536                  # every metric, wide SAE

``tokens`` evaluates one zoo SAE (core metrics by default) at each window size; ``wide``
builds an SAE with random weights of the zoo's shape but ``--d-sae`` latents and runs every
metric family on it. The table goes to stdout and the figures to ``--out`` (JSON).
Not a test: it takes minutes to hours on a laptop, and it measures, it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ZOO_SAE = REPO / "fixtures" / "saes" / "topk-k32"


def measure(args: list[str], workdir: Path) -> dict[str, Any]:
    """Run ``pytest benchmarks ARGS`` in a child; its wall seconds, peak RSS and report."""
    report = workdir / "interpscore.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "benchmarks"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        f"--interpscore-json={report}",
        *args,
    ]
    print("$", " ".join(command[2:]), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    outcome = json.loads(report.read_text()) if report.is_file() else {}
    timing = outcome.get("run", {}).get("timing", {})
    return {
        "args": args,
        "exit_status": os.waitstatus_to_exitcode(status),
        "wall_seconds": round(seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "by_family": timing.get("by_family", {}),
        "errors": {
            f"{sae['id']}:{name}": metric.get("error")
            for sae in outcome.get("saes", [])
            for name, metric in sae.get("metrics", {}).items()
            if metric.get("error")
        },
    }


def wide_sae(source: Path, d_sae: int, target: Path, seed: int = 0) -> Path:
    """An SAE folder like ``source`` with ``d_sae`` latents and random unit-norm decoder
    rows (encoder = decoder transposed), stored in float16 as the zoo is."""
    import torch
    from safetensors.torch import save_file

    cfg = json.loads((source / "cfg.json").read_text())
    d_in = int(cfg["d_in"])
    cfg["d_sae"] = d_sae
    cfg["metadata"] = {**cfg.get("metadata", {}), "zoo_name": f"wide-{d_sae}", "note": "random"}
    generator = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=generator)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    weights = {
        "W_dec": w_dec,
        "W_enc": w_dec.T.contiguous(),
        "b_enc": torch.zeros(d_sae),
        "b_dec": torch.zeros(d_in),
    }
    target.mkdir(parents=True, exist_ok=True)
    (target / "cfg.json").write_text(json.dumps(cfg, indent=1))
    save_file({k: v.half() for k, v in weights.items()}, str(target / "sae_weights.safetensors"))
    return target


def table(rows: list[dict[str, Any]], label: str) -> str:
    lines = [
        f"| {label} | wall s | peak RSS MiB | exit | slowest families (s) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        slowest = ", ".join(f"{k} {v:.0f}" for k, v in list(row["by_family"].items())[:3])
        lines.append(
            f"| {row['label']} | {row['wall_seconds']} | {row['peak_rss_mib']} | "
            f"{row['exit_status']} | {slowest} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    tokens = sub.add_parser("tokens", help="one SAE at several window sizes")
    tokens.add_argument("--tokens", type=int, nargs="+", default=[8192, 65536, 262144])
    tokens.add_argument("--sae", default=str(ZOO_SAE))
    tokens.add_argument("-k", default="test_core", help="families to run (pytest -k)")
    wide = sub.add_parser("wide", help="every metric on a wide random SAE")
    wide.add_argument("--d-sae", type=int, default=65536)
    wide.add_argument("--tokens", type=int, default=8192)
    wide.add_argument("-k", default=None, help="families to run (default: every family)")
    for p in (tokens, wide):
        p.add_argument("--out", type=Path, default=REPO / "reports" / "runs" / "scaling.json")
        p.add_argument("extra", nargs="*", help="more pytest options, after --")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="interpscore-scaling-"))
    rows = []
    try:
        if args.mode == "tokens":
            for n in args.tokens:
                run = measure(
                    [f"--sae={args.sae}", f"--tokens={n}", "-k", args.k, *args.extra], work
                )
                rows.append({"label": f"{n:,} tokens", "tokens": n, **run})
            label = "window"
        else:
            sae = wide_sae(ZOO_SAE, args.d_sae, work / f"wide-{args.d_sae}")
            selection = ["-k", args.k] if args.k else []
            run = measure(
                [f"--sae={sae}", f"--tokens={args.tokens}", *selection, *args.extra], work
            )
            rows.append({"label": f"{args.d_sae:,} latents", "d_sae": args.d_sae, **run})
            label = "SAE"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, label))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = {"mode": args.mode, "cpus": os.cpu_count(), "rows": rows}
    args.out.write_text(json.dumps(figures, indent=1))
    print(f"figures: {args.out}")
    return 0 if all(r["exit_status"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
