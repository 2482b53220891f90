"""Final weights as safetensors with the config in the header (loads without pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from dae.errors import CheckpointError, MissingFileError
from dae.train.checkpoint import atomic_write, unwrap


def save_weights(path: str | Path, model: nn.Module, config: dict[str, Any]) -> None:
    """Atomically write `model`'s state dict and its config to a `.safetensors` file."""
    save_state(path, unwrap(model).state_dict(), config)


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
