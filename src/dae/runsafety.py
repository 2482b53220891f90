"""Run-folder safety: which folders dae may write to, what `--overwrite` may delete, one writer.

Every command that writes a run folder (`train`, `train-prior`, `compare-priors`, ...) claims it
through `claim_run_dir`, which
- refuses `/`, `~`, `.` (the empty path is `.`), any folder above the working directory or home,
  and an `--out` that is, or contains, one of the command's own input runs;
- on `--overwrite` deletes only the files dae itself writes, and only in a folder whose
  `config.yaml` is a dae config; a user's other files are never touched;
- takes an exclusive lock (`.dae.lock`, holding the pid) so that a second live `--resume` of the
  same run is refused instead of interleaving logs and checkpoints.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import yaml

LOCK_NAME = ".dae.lock"

# What dae writes into a run folder (train, train-prior, sample, evaluate): all `--overwrite`
# may delete. Folders are emptied of these names only, then removed if nothing else is left.
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "model.safetensors",
    "latents.safetensors",
    "prior.safetensors",
    "prior_ema.safetensors",
    "eval.json",
    "eval_recon.png",
    "latents.png",
)
# Files only a lock holder (train, train-prior) writes, so a temporary of theirs found after
# taking the lock was left by a killed process. (`dae evaluate` writes eval.json without the lock.)
LOCKED_WRITES = (
    "config.yaml",
    "model.safetensors",
    "latents.safetensors",
    "prior.safetensors",
    "prior_ema.safetensors",
)
RUN_FOLDERS = {
    "checkpoints": ("last.pt", ".*.tmp"),
    "tb": ("events.out.tfevents.*",),
    "samples": ("samples.npz", "grid.png", "samples.yaml", "scores.json", ".*.tmp"),
}


class RunFolderError(FileExistsError):
    """An output folder dae must not write to, or one another dae process is using."""


def is_dae_config(path: Path) -> bool:
    """Whether `path` is a config.yaml that dae wrote: a mapping with a `kind` and a `train` section."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("kind"), str)
        and isinstance(data.get("train"), dict)
    )


def check_out_path(out: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse output folders whose replacement would destroy something that is not the run."""
    text = str(out).strip()
    if text in ("", ".", "/", "~") or text.startswith("~") and out.expanduser() == Path.home():
        raise RunFolderError(f"--out {str(out)!r}: choose a folder of its own for the run")
    target = out.expanduser().resolve()
    for special in (Path("/"), Path.home().resolve(), Path.cwd().resolve()):
        if target == special or target in special.parents:
            raise RunFolderError(
                f"--out {out}: is {special} or a folder above it; choose a folder of its own"
            )
    for given in inputs:
        source = Path(given).expanduser().resolve()
        if source == target or target in source.parents:
            raise RunFolderError(
                f"--out {out}: is or contains the input run {given}; choose another folder"
            )


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds (part of) a run: a config, a log or checkpoints."""
    return any((run_dir / name).exists() for name in ("checkpoints", "metrics.jsonl"))


def remove_run_files(run_dir: Path) -> None:
    """Delete what dae wrote in `run_dir` (see RUN_FILES); anything else stays."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for folder, patterns in RUN_FOLDERS.items():
        sub = run_dir / folder
        if not sub.is_dir():
            continue
        for pattern in patterns:
            for file in sub.glob(pattern):
                file.unlink(missing_ok=True)
        if not any(sub.iterdir()):
            sub.rmdir()


class RunLock:
    """An exclusive `flock` on RUN/.dae.lock, released by `release()` or when the process dies.

    The kernel drops a dead process's lock, so a stale lock file (from a kill) never blocks; the
    pid written into it names the live holder in the refusal.
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(self._fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            self._fd = None
            raise RunFolderError(
                f"{run_dir} is in use by another dae process ({holder}); wait for it to finish "
                "or stop it, then --resume"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_dir(
    run_dir: Path, resume: bool, overwrite: bool, inputs: Iterable[Path] = ()
) -> RunLock:
    """Check `run_dir` is safe to write, lock it, clear a replaced run; returns the held lock.

    Without `--resume` / `--overwrite` an existing run is refused; `--overwrite` of a folder that
    is not a dae run is refused; `--resume` needs a checkpoint.
    """
    from dae.train.checkpoint import CheckpointError, last_checkpoint

    run_dir = Path(run_dir)
    check_out_path(run_dir, inputs)
    existing = holds_run(run_dir)
    if existing and not resume and not overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run; pass --resume to continue it or --overwrite "
            "to replace it"
        )
    if existing and overwrite and not is_dae_config(run_dir / "config.yaml"):
        raise RunFolderError(
            f"{run_dir}: --overwrite refused, this folder has no dae config.yaml, so it is not "
            "a dae run; choose another --out"
        )
    if resume and not last_checkpoint(run_dir).is_file():
        raise CheckpointError(f"--resume: no checkpoint at {last_checkpoint(run_dir)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    if existing and overwrite:
        remove_run_files(run_dir)
    for name in LOCKED_WRITES:  # temporaries of a killed writer; with the lock, none is live
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    return lock
