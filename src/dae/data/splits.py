"""Where a dataset split's files are and how `val` is carved from `train`; shared by the memory
(`dae.data.images`) and streaming (`dae.data.stream`) sources, so both split identically."""

from __future__ import annotations

from pathlib import Path

import torch

from dae.errors import MissingFileError


def first_dir(*candidates: Path) -> Path | None:
    """The first of `candidates` that is a folder, else None."""
    return next((p for p in candidates if p.is_dir()), None)


def split_folder(root: Path, split: str) -> Path:
    """The folder of a `folder` dataset's raw split: `root/<split>`, else `root` itself for train."""
    folder = first_dir(root / split) or (root if split == "train" else None)
    if folder is None:
        raise MissingFileError(f"image folder {root} has no '{split}' subfolder")
    return folder


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of `range(n)` into sorted (train, val) indices; val has round(n * fraction)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values
