"""Training state that is not a file format: RNG states, strict state-dict loading, unwrapping
DDP / `torch.compile`, and the final weights of a trained module (written by dae/files.py)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from dae.errors import CheckpointError
from dae.files import save_state


def host_rng_state() -> dict[str, Any]:
    """The CPU torch and Python RNG states, as checkpointable plain data."""
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}


def restore_host_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `host_rng_state` (Python's state tuple is (version 3, words, gauss_next))."""
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """`load_state_dict(strict=True)` with an error that says which part of which run mismatched."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).split("\n\t")[:3]
        raise CheckpointError(
            f"checkpoint does not fit this model ({what}): " + " ".join(first)
        ) from None


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and/or `torch.compile` wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def save_weights(path: str | Path, model: torch.nn.Module, config: dict[str, Any]) -> None:
    """Atomically write `model`'s state dict and its config to a `.safetensors` file."""
    save_state(path, unwrap(model).state_dict(), config)
