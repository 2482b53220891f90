"""A labelled image set packed into one compressed `.npz` of uint8 arrays, for machines without
the original files (a lent GPU gets a tree of <= 64 MiB): `dae data pack cifar10 --out F.npz`.

Point any image preset at it with `--set data.root=F.npz`: `load_images` reads the packed file
instead of the data root, and the preset's `data.name` must match the packed set's name. Arrays:
`train_images` / `test_images` uint8 (N, C, H, W), `train_labels` / `test_labels` int64 (N,),
`classes` and `name` as unicode arrays, so that the file loads with `allow_pickle=False`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dae.data.images import load_images
from dae.errors import ConfigError, RunFolderError
from dae.files import atomic_write


def _subset(images, labels, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` images drawn without replacement (seeded), in their original order."""
    if n > len(images):
        raise ConfigError(f"asked for {n} images, the split has {len(images)}")
    index = np.sort(np.random.default_rng(seed).permutation(len(images))[:n])
    return images.numpy()[index], labels.numpy()[index].astype(np.int64)


def pack_images(
    name: str,
    out: Path,
    n_train: int,
    n_test: int,
    root: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, tuple[int, ...]]:
    """Write a seeded subset of dataset `name` (train and test splits) to `out` (.npz); a file
    already at `out` is replaced only with `overwrite`."""
    if out.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {out}")
    if out.exists() and not overwrite:
        raise RunFolderError(f"--out {out}: already exists; pass --overwrite to replace it")
    train, test = load_images(name, "train", root), load_images(name, "test", root)
    train_x, train_y = _subset(train.images, train.labels, n_train, seed)
    test_x, test_y = _subset(test.images, test.labels, n_test, seed + 1)
    arrays = {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
        "classes": np.array(train.classes),
        "name": np.array(name),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a tmp name
            np.savez_compressed(f, **arrays)

    atomic_write(out, write)
    return {k: v.shape for k, v in arrays.items()}
