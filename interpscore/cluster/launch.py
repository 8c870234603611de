"""``interpscore launch``: the shards of one evaluation as submitit jobs (a Slurm job array
on a cluster, submitit's local executor on one machine), then wait and merge.

Each job runs ``pytest ARGS --shard I/N --results-dir DIR`` in its own process. A shard
that is pre-empted or times out on Slurm is requeued by submitit (the job is
checkpointable) and resumes from its results; a shard that fails is reported with its log
and the command that resubmits it alone (``--only I``). Nothing here schedules work
itself: Slurm, or the local executor, does.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from interpscore.errors import InterpScoreError

#: Options the launcher sets for every shard; the pytest arguments must not repeat them.
OWN_OPTIONS = ("--shard", "--results-dir", "--force")
#: pytest exit statuses after which a shard's results are all written (1: some tests failed,
#: which the report shows).
COMPLETED = (0, 1)
_EXIT_NAMES = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests"}


class LaunchError(InterpScoreError):
    """A launch that cannot be submitted as asked."""


class ShardFailed(RuntimeError):
    """Raised inside a job whose pytest run did not complete (submitit marks it failed)."""


@dataclass(frozen=True)
class LaunchSettings:
    """What to run, where its results go, and what each shard's job asks the scheduler for."""

    pytest_args: tuple[str, ...]
    shards: int
    results_dir: str
    log_dir: Path
    cwd: Path
    executor: str = "auto"  # auto (Slurm when sbatch is there), slurm or local
    only: tuple[int, ...] = ()
    force: bool = False
    timeout_min: int = 24 * 60
    gpus_per_shard: int = 0
    cpus_per_shard: int | None = None
    mem_gb: int | None = None
    devices: tuple[str, ...] = ()  # local executor: shard i sees devices[i % len]
    slurm: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()

    def indices(self) -> list[int]:
        return list(self.only) if self.only else list(range(1, self.shards + 1))


def check(settings: LaunchSettings) -> None:
    """Refuse a launch that could not do what it says, before anything is submitted."""
    if settings.shards < 1:
        raise LaunchError(f"--shards {settings.shards}: need at least 1.", "give --shards N.")
    bad = [i for i in settings.only if not 1 <= i <= settings.shards]
    if bad:
        raise LaunchError(
            f"--only {bad[0]}: shards are numbered 1..{settings.shards}.", "give a shard number."
        )
    own = [a for a in settings.pytest_args if a.split("=", 1)[0] in OWN_OPTIONS]
    if own:
        raise LaunchError(
            f"The pytest arguments set {own[0]}, which the launcher sets for every shard.",
            "leave --shard, --results-dir and --force to `interpscore launch`.",
        )
    if settings.executor not in ("auto", "slurm", "local"):
        raise LaunchError(
            f"--executor {settings.executor!r} is not auto, slurm or local.", "pick one."
        )
    if settings.devices and settings.executor == "slurm":
        raise LaunchError(
            "--devices applies to the local executor; Slurm gives each job its GPUs.",
            "use --gpus-per-shard with Slurm.",
        )
    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        raise LaunchError(
            "interpscore launch needs submitit, which is not installed.",
            'pip install "interpscore[cluster]" (or pip install submitit).',
        ) from exc


@dataclass
class ShardJob:
    """The callable a job runs: pytest on one shard, in this process (so that cancelling the
    job stops the evaluation with it). Checkpointable: on pre-emption or time-out Slurm
    requeues it, and the rerun resumes from the results directory (never with --force)."""

    pytest_args: tuple[str, ...]
    shard: int
    shards: int
    results_dir: str
    cwd: str
    report_path: str | None
    force: bool = False
    visible_devices: str | None = None
    set_devices: bool = False

    def argv(self) -> list[str]:
        args = [
            *self.pytest_args,
            f"--shard={self.shard}/{self.shards}",
            f"--results-dir={self.results_dir}",
        ]
        if self.force:
            args.append("--force")
        if self.report_path and not any(a.startswith("--interpscore-json") for a in args):
            args.append(f"--interpscore-json={self.report_path}")
        return args

    def __call__(self) -> dict[str, int]:
        import pytest

        os.chdir(self.cwd)
        if self.set_devices:  # the local executor hides every GPU unless asked
            if self.visible_devices is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = self.visible_devices
        argv = self.argv()
        sys.argv = ["pytest", *argv]  # what the shard's report records as its command
        code = int(pytest.main(argv))
        if code not in COMPLETED:
            raise ShardFailed(
                f"shard {self.shard}/{self.shards}: pytest exited with status {code} "
                f"({_EXIT_NAMES.get(code, 'error')})"
            )
        return {"shard": self.shard, "exit": code}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(replace(self, force=False))


@dataclass
class ShardHandle:
    """A submitted shard: its number and its submitit job."""

    shard: int
    job: Any


@dataclass
class ShardStatus:
    """How a shard's job ended."""

    shard: int
    job_id: str
    state: str
    exit: int | None
    error: str | None
    stdout: Path
    stderr: Path

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit in COMPLETED


def _executor(settings: LaunchSettings) -> Any:
    import submitit

    cluster = None if settings.executor == "auto" else settings.executor
    executor = submitit.AutoExecutor(folder=settings.log_dir / "%j", cluster=cluster)
    params: dict[str, Any] = {"timeout_min": settings.timeout_min, "name": "interpscore"}
    if settings.gpus_per_shard:
        params["gpus_per_node"] = settings.gpus_per_shard
    if settings.cpus_per_shard:
        params["cpus_per_task"] = settings.cpus_per_shard
    if settings.mem_gb:
        params["mem_gb"] = settings.mem_gb
    if executor.cluster == "slurm":
        params |= {f"slurm_{k}": v for k, v in settings.slurm.items()}
    if settings.setup:
        params[f"{executor.cluster}_setup"] = list(settings.setup)
    executor.update_parameters(**params)
    return executor


def submit(settings: LaunchSettings) -> list[ShardHandle]:
    """Submit the shards (one Slurm job array; separate processes locally)."""
    check(settings)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    executor = _executor(settings)
    local = executor.cluster == "local"
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    jobs = []
    for index in settings.indices():
        devices = (
            settings.devices[(index - 1) % len(settings.devices)] if settings.devices else None
        )
        jobs.append(
            ShardJob(
                pytest_args=settings.pytest_args,
                shard=index,
                shards=settings.shards,
                results_dir=settings.results_dir,
                cwd=str(settings.cwd),
                report_path=str(
                    settings.log_dir / f"shard-{index}-of-{settings.shards}" / "interpscore.json"
                ),
                force=settings.force,
                visible_devices=devices if devices is not None else inherited,
                set_devices=local,
            )
        )
    with executor.batch():
        submitted = [executor.submit(job) for job in jobs]
    return [ShardHandle(job.shard, sub) for job, sub in zip(jobs, submitted, strict=True)]


def status(handle: ShardHandle) -> ShardStatus:
    """The outcome of a finished shard's job."""
    job = handle.job
    exit_code: int | None = None
    error: str | None = None
    try:
        exit_code = int(job.result()["exit"])
    except Exception as exc:  # noqa: BLE001 - submitit raises the job's own error, any type
        error = _job_error(exc, str(job.state))
    return ShardStatus(
        handle.shard,
        str(job.job_id),
        str(job.state),
        exit_code,
        error,
        Path(job.paths.stdout),
        Path(job.paths.stderr),
    )


def _job_error(exc: BaseException, state: str) -> str:
    """One line on why a job gave no result: pytest's status, the job's own error, or that
    it ended without one (killed, cancelled, out of memory, pre-empted)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ShardFailed:" in line:
            return line.split("ShardFailed:", 1)[1].strip()
    if type(exc).__name__ == "UncompletedJobError":
        return f"the job ended without a result (state {state}: killed, cancelled or out of memory)"
    return lines[-1] if lines else type(exc).__name__


def wait(
    handles: Sequence[ShardHandle],
    echo: Callable[[str], None],
    poll_s: float = 2.0,
    shards: int | None = None,
) -> list[ShardStatus]:
    """Wait for every job, saying when each ends."""
    count = shards or len(handles)
    pending = list(handles)
    out: dict[int, ShardStatus] = {}
    while pending:
        for handle in [h for h in pending if h.job.done()]:
            pending.remove(handle)
            result = status(handle)
            out[handle.shard] = result
            verdict = (
                f"FAILED: {result.error or result.state}"
                if not result.ok
                else "done, with failed tests (see the report)"
                if result.exit == 1
                else "done"
            )
            echo(f"shard {handle.shard}/{count} (job {result.job_id}) {verdict}")
        if pending:
            time.sleep(poll_s)
    return [out[h.shard] for h in handles]


def tail(path: Path, lines: int = 8) -> list[str]:
    """The last lines of a log (none when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def resubmit_command(command: Sequence[str], shard: int) -> str:
    """The launch command with ``--only`` set to one shard."""
    args = list(command)
    out: list[str] = []
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--":
            out += ["--only", str(shard), *args[index:]]
            break
        if arg == "--only":
            skip = True
            continue
        if arg.startswith("--only="):
            continue
        out.append(arg)
    else:
        out += ["--only", str(shard)]
    return shlex.join(out)


def failure_lines(failed: Sequence[ShardStatus], shards: int, command: Sequence[str]) -> list[str]:
    """What to say about failed shards: why, their log, and how to resubmit each alone."""
    lines = []
    for s in failed:
        lines.append(
            f"shard {s.shard}/{shards} (job {s.job_id}, {s.state}) failed: {s.error or 'no result'}"
        )
        lines.append(f"  log: {s.stderr} (and {s.stdout.name})")
        lines += [f"  | {line}" for line in tail(s.stderr)]
        lines.append(f"  resubmit it alone: {resubmit_command(command, s.shard)}")
    return lines


def launch(
    settings: LaunchSettings,
    out: Path,
    command: Sequence[str],
    echo: Callable[[str], None],
    wait_for_jobs: bool = True,
) -> int:
    """Submit the shards, wait, and merge their results into ``out``; 1 when a shard failed
    (each is reported with its log and its resubmit command), else 0."""
    from interpscore.cluster.merge import merge, write_merged

    handles = submit(settings)
    ids = ", ".join(f"{h.shard}: {h.job.job_id}" for h in handles)
    echo(
        f"submitted {len(handles)} shard(s) of {settings.shards} (jobs {ids}); logs in "
        f"{settings.log_dir}"
    )
    if not wait_for_jobs:
        echo(f"when they are done: interpscore merge {settings.results_dir} -o {out}")
        return 0
    statuses = wait(handles, echo, shards=settings.shards)
    failed = [s for s in statuses if not s.ok]
    if failed:
        for line in failure_lines(failed, settings.shards, command):
            echo(line)
        return 1
    merged = merge([settings.results_dir], list(command))
    json_path, md_path = write_merged(merged, out)
    for note in merged.notes:
        echo(note)
    echo(
        f"{len(merged.report['saes'])} SAE(s) from {merged.units} result file(s): "
        f"{json_path}, {md_path}"
    )
    return 0
