"""Run-folder safety: which folders dae may write to, what `--overwrite` may delete, one writer.

Every command that writes a run folder (`train`, `train-prior`, `compare-priors`, ...) claims it
through `claim_run_dir`, which
- refuses `/`, `~`, `.` (the empty path is `.`), any folder above the working directory or home,
  and an `--out` that is, or contains, one of the command's own input runs;
- on `--overwrite` deletes only the files dae itself writes (`RunFolder.OWNED_FILES` /
  `OWNED_FOLDERS`), and only in a folder whose `config.yaml` is a dae config; a user's other files
  are never touched;
- takes an exclusive lock (`RunFolder.lock_path`, holding the pid) so that a second live
  `--resume` of the same run is refused instead of interleaving logs and checkpoints.
Commands that write a results folder (`results.json` and files beside it: `reproduce toy / gan /
theory`, `complexity`, `compare-priors`) claim it through `claim_results_dir`: the results of
another command (they share file names) are never replaced, the command's own only when asked.
The file names are `RunFolder`'s; this module only decides what may be done with them.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import yaml

from dae.errors import CheckpointError, RunFolderError
from dae.files import atomic_write
from dae.run_folder import RunFolder

__all__ = [
    "RunFolderError",
    "RunLock",
    "check_out_path",
    "claim_results_dir",
    "claim_run_dir",
    "is_dae_config",
]

# Names the command that wrote a results folder's results.json (a hidden file beside it).
MADE_BY = ".dae-results"


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


def remove_run_files(run: RunFolder) -> None:
    """Delete what dae wrote in the run folder; anything else stays."""
    for name in run.OWNED_FILES:
        (run.path / name).unlink(missing_ok=True)
    for folder, patterns in run.OWNED_FOLDERS.items():
        sub = run.path / folder
        if not sub.is_dir():
            continue
        for pattern in patterns:
            for file in sub.glob(pattern):
                file.unlink(missing_ok=True)
        if not any(sub.iterdir()):
            sub.rmdir()


class RunLock:
    """An exclusive `flock` on the run's lock file, released by `release()` or when the process
    dies.

    The kernel drops a dead process's lock, so a stale lock file (from a kill) never blocks; the
    pid written into it names the live holder in the refusal.
    """

    def __init__(self, run_dir: str | Path):
        self.path = RunFolder(run_dir).lock_path
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
        _HELD.add(self._fd)

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# Lock descriptors this process holds. A forked child (a DataLoader worker) would inherit them and
# keep the flock after the owner is killed, so the next --resume would be refused: children close
# their copies at once.
_HELD: set[int] = set()


def _close_held_in_child() -> None:
    for fd in _HELD:
        os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def claim_run_dir(
    run_dir: str | Path, resume: bool, overwrite: bool, inputs: Iterable[str | Path] = ()
) -> RunLock:
    """Check the run folder is safe to write, lock it, clear a replaced run; returns the held
    lock (release it, or use it as a context manager, when the command is done).

    Without `--resume` / `--overwrite` an existing run is refused; `--overwrite` of a folder that
    is not a dae run is refused; `--resume` needs a checkpoint.
    """
    run = RunFolder(run_dir)
    check_out_path(run.path, inputs)
    existing = run.holds_run()
    if existing and not resume and not overwrite:
        raise RunFolderError(
            f"{run.path} already holds a run; pass --resume to continue it or --overwrite "
            "to replace it"
        )
    if existing and overwrite and not resume and not is_dae_config(run.config_path):
        raise RunFolderError(
            f"{run.path}: --overwrite refused, this folder has no dae config.yaml, so it is not "
            "a dae run; choose another --out"
        )
    if run.config_path.is_file() and not is_dae_config(run.config_path):  # ours to write
        raise RunFolderError(
            f"{run.config_path}: is not a config dae wrote, and a run would replace it; choose "
            "another --out"
        )
    if resume and not run.checkpoint_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {run.checkpoint_path}")
    run.path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run.path)
    if existing and overwrite and not resume:
        remove_run_files(run)
    for name in run.LOCKED_WRITES:  # temporaries of a killed writer; with the lock, none is live
        for tmp in run.path.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
    return lock


def results_made_by(out: Path) -> str | None:
    """The command whose results `out` holds: None if none, "" if an older dae did not say."""
    if not (out / "results.json").exists():
        return None
    try:
        return (out / MADE_BY).read_text().strip()
    except OSError:
        return ""


def claim_results_dir(
    out: Path,
    command: str,
    overwrite: bool,
    resumable: bool = False,
    inputs: Iterable[str | Path] = (),
) -> None:
    """Check that `command` may write its results into `out`, and record that it does.

    Another command's results are refused even with `overwrite` (`reproduce theory --out runs/toy`
    would replace the toy table); the command's own need `overwrite`, unless it is `resumable`
    (it reuses what the folder holds, as `compare-priors` does its trained priors). `inputs`: the
    command's input runs, which `out` must not be or contain."""
    check_out_path(out, inputs)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out}: is a file; give a folder for the results")
    made_by = results_made_by(out)
    if made_by and made_by != command:
        raise RunFolderError(
            f"--out {out}: holds the results of `dae {made_by}`; choose another folder"
        )
    if made_by is not None and not overwrite and not resumable:
        raise RunFolderError(
            f"{out} already holds results (results.json); pass --overwrite to replace them"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MADE_BY, lambda tmp: tmp.write_text(command + "\n"))
