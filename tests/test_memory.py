"""Memory flat in tokens: a run's peak memory does not grow with the evaluation window
beyond the per-sequence arrays its intervals need.

Each run is a child process (its own peak RSS) of the real plugin and core metrics on the
tiny Llama. Keeping one float32 logit row per token, the mistake this guards against,
would cost 124 MiB more at 32× the window (63,488 more tokens × 512 vocab × 4 bytes).

The children run with the environment's malloc settings removed, as a user's run would.
glibc's default keeps the free space that batch tensors leave in the heap resident (peak
RSS at 131,072 tokens measured 790–932 MiB against 668 MiB at 2,048); the pass hands it
back after each batch (:mod:`interpscore.evaluation.heap`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import subjects

from interpscore.evaluation.heap import release_free_memory

REPO = Path(__file__).resolve().parents[1]
CHILD = (
    "import resource, sys, pytest\n"
    "code = pytest.main(sys.argv[1:])\n"
    "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def _peak_kib(folder: Path, sae: Path, corpus: Path, tokens: int) -> tuple[int, dict]:
    out = folder / f"{tokens}.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            "test_core.py",
            f"--sae={sae}",
            f"--dataset={corpus}",
            f"--tokens={tokens}",
            "--context-len=64",
            "--bootstrap=100",
            "--no-controls",
            "--benchmark-disable",
            "-p",
            "no:randomly",
            "-q",
            f"--interpscore-json={out}",
        ],
        cwd=folder,
        env={k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    peak = next(line for line in proc.stdout.splitlines() if line.startswith("PEAK_KIB"))
    return int(peak.split()[1]), json.loads(out.read_text())


def test_peak_memory_is_flat_in_the_window(tmp_path, tiny_saes):
    (tmp_path / "test_core.py").write_text((REPO / "benchmarks" / "test_core.py").read_text())
    corpus = subjects.write_corpus(tmp_path / "corpus.jsonl", n_docs=944)
    small, small_report = _peak_kib(tmp_path, tiny_saes["topk"], corpus, 2048)
    large, large_report = _peak_kib(tmp_path, tiny_saes["topk"], corpus, 65536)
    windows = [
        r["saes"][0]["metrics"]["l0"]["window"]["n_positions"] for r in (small_report, large_report)
    ]
    assert windows == [2048, 65536]
    growth_mib = (large - small) / 1024
    # 992 more sequences: their per-sequence arrays and the token ids are about 1 MiB.
    assert growth_mib < 32, f"peak RSS grew {growth_mib:.0f} MiB for 32x the tokens"


def test_free_memory_is_handed_back_on_glibc():
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert release_free_memory() is glibc
