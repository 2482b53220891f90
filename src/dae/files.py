"""The files dae writes and reads, safely: every write is atomic (a kill leaves the old file or the
new one, never half), a checkpoint loads without executing pickled code, and final weights are
safetensors with their config in the header; a JSON file found corrupt is named with its fix.
Every layer writes through here, so it imports nothing of dae but its errors.
"""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from dae.errors import CheckpointError, CorruptFileError, MissingFileError


def atomic_write(path: Path, write: Any) -> None:
    """Call `write(tmp_path)`, fsync, then rename over `path`: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # Fault-injection point for the robustness suite: widen the window in which a kill lands
        # mid-write. Unset in normal use.
        if delay := os.environ.get("DAE_FAULT_SAVE_DELAY"):
            time.sleep(float(delay))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; colleagues should read the run
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite(data: Any) -> Any:
    """`data` with NaN / inf (an undefined p-value, say) as None: strict JSON readers reject NaN."""
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return None if isinstance(data, float) and not math.isfinite(data) else data


def write_json(path: Path, data: Any, indent: int = 1) -> None:
    """`data` as strict JSON (NaN / inf as null), written atomically."""
    text = json.dumps(finite(data), indent=indent, default=str)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries a killed writer left behind (never a finished file)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def read_json(path: Path, fix: str) -> Any:
    """`path`'s JSON, or None where there is no such file. A corrupt one (cut short or edited by
    hand: dae's own writes are atomic) is a `CorruptFileError` that names it and `fix`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError alike
        raise CorruptFileError(f"{path}: corrupt ({err}); {fix}") from None


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write `payload` (tensors, numbers, strings, lists, dicts) to `path`."""
    try:
        atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        kept = "the previous checkpoint is kept" if Path(path).exists() else "nothing was written"
        reason = _write_failure(err, Path(path))
        raise CheckpointError(f"could not write checkpoint {path} ({reason}); {kept}") from err


def _write_failure(err: BaseException, path: Path) -> str:
    """Why a write failed, in words: torch's "file write failed" hides ENOSPC, so a folder with
    less free space than the previous checkpoint (or 1 MiB) is reported as full."""
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    need = max(path.stat().st_size if path.exists() else 0, 1 << 20)
    if shutil.disk_usage(path.parent).free < need:
        return os.strerror(errno.ENOSPC)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _unpickler_reason(err: Exception) -> str:
    """torch's own reason ("Unsupported global: GLOBAL os.system ..."), without its advice to
    retry with weights_only=False, which would run the payload."""
    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: Please use|\n|$)", str(err))
    return found.group(1).rstrip(".") if found else type(err).__name__


def load_torch_file(path: str | Path) -> Any:
    """Load a `torch.save` file with `weights_only=True`: a pickled code payload is refused, never
    run, and a junk or truncated file is named in one line."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(2)
    # torch.save writes a zip (or, before torch 1.6, a pickle); anything else would reach the
    # unpickler and be misreported as a pickled payload
    if magic[:2] != b"PK" and magic[:1] != b"\x80":
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint (not a torch.save file)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain data "
            f"(possibly pickled code), which dae never unpickles ({_unpickler_reason(err)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as err:
        # junk bytes reach the unpickler's opcode tables as KeyError / IndexError
        raise CheckpointError(f"{path}: unreadable or truncated checkpoint ({err!r})") from None
    return payload


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint (a dict) through `load_torch_file`."""
    payload = load_torch_file(path)
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path}: not a dae checkpoint (top level is {type(payload).__name__})"
        )
    return payload


def save_state(path: str | Path, state: dict[str, Any], config: dict[str, Any]) -> None:
    """Atomically write a state dict (e.g. EMA weights) and a config to a `.safetensors` file."""
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    metadata = {"config": json.dumps(config), "format": "dae"}
    atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=metadata))


def load_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict, config) from a file written by `save_weights`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return load_file(str(path)), json.loads(metadata.get("config", "{}"))
    except (SafetensorError, OSError, ValueError) as err:  # truncated, corrupt, not safetensors
        raise CheckpointError(f"{path}: unreadable or corrupt weights file ({err})") from None
