"""Where dae finds data and keeps caches: never a machine path baked into a preset."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_data_root(root: str | Path | None = None) -> Path:
    """The dataset root: `root` if given, else env `DAE_DATA`, else `~/.cache/dae/data`."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("DAE_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "dae" / "data"


def cache_root() -> Path:
    """dae's cache folder (decoded images, feature networks): env `DAE_CACHE` or `~/.cache/dae`."""
    env = os.environ.get("DAE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dae"


def absolute_path(path: str | None) -> str | None:
    """A path as a run's config stores it: absolute, so the run reads the same files from any
    working directory (`dae sample` / `dae evaluate` elsewhere)."""
    return str(Path(path).expanduser().resolve()) if path else None
