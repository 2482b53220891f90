"""Train, evaluate and probe a sweep's runs in parallel subprocesses; a killed sweep resumes.

A run's state is read from its folder, never from a sweep-level ledger, so a sweep killed at any
moment resumes: final weights present -> not retrained; a checkpoint but no weights -> continued
with `dae train --resume`; nothing -> trained from scratch. Evaluation and probe results older than
the weights are redone. Each run's output goes to `RUN/sweep.log`, so parallel jobs do not interleave.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dae.config import to_dict
from dae.errors import RunFolderError
from dae.experiments import load_config
from dae.provenance import pin_paths
from dae.run_folder import RunFolder, first_difference
from dae.sweep.job import SEPARATOR
from dae.sweep.plan import SweepRun

RunState = Literal["done", "partial", "new"]
PROBE_DIR = "probe"


@dataclass
class RunnerOptions:
    config: Path
    jobs: int = 1
    eval_metrics: str = "recon,lipschitz,codebook"
    eval_args: tuple[str, ...] = ()
    probe: bool = True
    probe_args: tuple[str, ...] = ()
    log: Callable[[str], None] = field(default=print)


@dataclass
class JobResult:
    run: SweepRun
    ok: bool
    seconds: float
    did: list[str]


def run_state(run_dir: Path) -> RunState:
    """done: final weights written; partial: a checkpoint to resume from; new: neither."""
    folder = RunFolder(run_dir)
    if folder.weights_path.is_file():
        return "done"
    return "partial" if folder.checkpoint_path.is_file() else "new"


def _measured_as_planned(saved: Any, planned: Any) -> Any:
    """`saved` with the values training measured (planned None, e.g. a KL-AE's
    `model.scaling_factor`) put back to None, so that a finished run compares with its plan."""
    if isinstance(saved, dict) and isinstance(planned, dict):
        return {
            k: None
            if k in planned and planned[k] is None
            else _measured_as_planned(v, planned.get(k))
            for k, v in saved.items()
        }
    return saved


def stale_run(run: SweepRun, config: Path) -> str | None:
    """Why the run already in `run.dir` was not made by this plan (None: it was, or the folder
    holds none). A finished run is never retrained, so a sweep rerun with another budget, preset or
    `--set` would otherwise report old runs under the new plan's name."""
    folder = RunFolder(run.dir)
    if not folder.config_path.is_file():
        return None
    _, cfg = load_config(config, list(run.overrides))
    pin_paths(cfg)  # as `dae train` stores it
    planned = to_dict(cfg)
    saved = folder.read_config_as_stored_now()
    return first_difference(planned, _measured_as_planned(saved, planned))


def check_runs_match_plan(runs: list[SweepRun], config: Path) -> None:
    """Refuse a sweep folder whose runs another plan made, naming the first such run."""
    for run in runs:
        diff = stale_run(run, config)
        if diff:
            raise RunFolderError(
                f"{run.dir}: a run of another sweep plan ({diff}); give another --out, or the "
                "same preset, --steps and --set as the sweep that made it"
            )


def probe_available() -> bool:
    """Whether this dae has the `dae probe` subcommand (issue 13 item 1)."""
    from dae.cli import COMMANDS

    return "dae.cli.probe" in COMMANDS


def _up_to_date(result: Path, weights: Path) -> bool:
    return result.is_file() and result.stat().st_mtime >= weights.stat().st_mtime


def job_commands(
    run: SweepRun, opts: RunnerOptions, probe: bool
) -> tuple[list[list[str]], list[str]]:
    """The `dae` commands a run still needs, and what they do in words (for progress lines)."""
    state = run_state(run.dir)
    folder = RunFolder(run.dir)
    weights = folder.weights_path
    commands, did = [], []
    if state != "done":
        train = ["train", str(opts.config), "--out", str(run.dir)]
        for override in run.overrides:
            train += ["--set", override]
        # A run killed before its first checkpoint left only logs: start it again.
        train.append("--resume" if state == "partial" else "--overwrite")
        commands.append(train)
        did.append("resumed training" if state == "partial" else "trained")
    if state != "done" or not _up_to_date(folder.eval_path, weights):
        commands.append(["evaluate", str(run.dir), "--metrics", opts.eval_metrics, *opts.eval_args])
        did.append("evaluated")
    probe_json = run.dir / PROBE_DIR / "probe.json"
    if probe and (state != "done" or not _up_to_date(probe_json, weights)):
        # The run's own probe folder: the sweep decides when it is out of date, so the probe
        # replaces its summary even when the recipe changed (as the probe steps of a
        # calibrated budget may)
        out = str(run.dir / PROBE_DIR)
        commands.append(["probe", str(run.dir), "--out", out, "--overwrite", *opts.probe_args])
        did.append("probed")
    return commands, did


class _Children:
    """Running subprocesses, so that an interrupted sweep stops its jobs instead of orphaning them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: set[subprocess.Popen] = set()
        self.stopping = False

    def run(self, cmd: list[str], log_path: Path, env: dict[str, str]) -> int:
        with open(log_path, "a") as log:
            with self.lock:
                if self.stopping:
                    return 130
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                self.procs.add(proc)
            try:
                return proc.wait()
            finally:
                with self.lock:
                    self.procs.discard(proc)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for proc in self.procs:
                proc.terminate()


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run_all(runs: list[SweepRun], opts: RunnerOptions) -> list[JobResult]:
    """Bring every run up to date (train / evaluate / probe), `opts.jobs` at a time."""
    probe = opts.probe and probe_available()
    if opts.probe and not probe:
        opts.log("sweep: `dae probe` is not available in this dae; skipping the probe step")
    states = {s: sum(run_state(r.dir) == s for r in runs) for s in ("done", "partial", "new")}
    opts.log(
        f"sweep: {len(runs)} runs ({states['done']} trained, {states['partial']} half-finished, "
        f"{states['new']} new); {opts.jobs} job(s) in parallel"
    )
    env = dict(os.environ)
    threads: list[str] = []
    if opts.jobs > 1:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        threads = ["--threads", "1"]
    children = _Children()
    todo = [(run, *job_commands(run, opts, probe)) for run in runs]

    def work(run: SweepRun, commands: list[list[str]], did: list[str]) -> JobResult:
        start = time.time()
        run.dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "dae.sweep.job", *threads]
        for i, command in enumerate(commands):
            argv += ([SEPARATOR] if i else []) + command
        code = children.run(argv, run.dir / "sweep.log", env)
        return JobResult(run, code == 0, time.time() - start, did)

    results = [JobResult(run, True, 0.0, []) for run, commands, _ in todo if not commands]
    pending = [t for t in todo if t[1]]
    done = len(results)
    pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs))
    try:
        futures = [pool.submit(work, *t) for t in pending]
        for future in as_completed(futures):
            res = future.result()
            results.append(res)
            done += 1
            status = f"{' + '.join(res.did)} in {res.seconds:.0f} s" if res.ok else "FAILED"
            opts.log(f"[{done}/{len(runs)}] {res.run.label}: {status}")
            if not res.ok:
                log_path = res.run.dir / "sweep.log"
                opts.log(f"  last lines of {log_path}:\n{_tail(log_path)}")
    except KeyboardInterrupt:
        children.stop()  # before the pool's shutdown, which waits for the running jobs
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
