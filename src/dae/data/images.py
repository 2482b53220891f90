"""Labelled image datasets (MNIST, CIFAR-10, any image folder) as in-memory uint8 tensors.

`load_images("cifar10", "train")` finds the data under the data root (argument, else env `DAE_DATA`,
else `~/.cache/dae/data`), in whichever official layout is there, and returns uint8 `(N, C, H, W)`:
small sets are kept as bytes (CIFAR-10 train is 150 MB) and turned into `[-1, 1]` floats per batch
by `to_float`. Decoding 60k JPEGs with PIL takes minutes, so decoded image folders are cached as an
`.npz` under `<DAE_CACHE>/images/`, keyed by a hash of file names, sizes and mtimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dae.config import ConfigError, check
from dae.data.formats import DataFormatError, read_cifar_pickles, read_image_folder, read_mnist
from dae.data.transforms import random_hflip, resize_center_crop, to_float, to_uint8
from dae.errors import MissingFileError, UnknownNameError
from dae.paths import cache_root, resolve_data_root

DatasetName = Literal["mnist", "cifar10", "folder"]
Split = Literal["train", "val", "test"]


@dataclass
class LabelledImages:
    """uint8 images `(N, C, H, W)`, int64 labels `(N,)`, and class names indexed by label."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.shape != (len(self.images),):
            raise ValueError(
                f"labels {tuple(self.labels.shape)} do not match {len(self.images)} images"
            )

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> LabelledImages:
        """The images and labels at `index` (same classes)."""
        return LabelledImages(self.images[index], self.labels[index], self.classes)


@dataclass
class ImageDataConfig:
    name: DatasetName = field(default="cifar10", metadata={"help": "mnist, cifar10 or folder"})
    root: str | None = field(
        default=None,
        metadata={
            "help": "data root (for folder: the folder); default env DAE_DATA, else ~/.cache/dae/data"
        },
    )
    split: Split = field(
        default="train", metadata={"help": "train, val (held out of train) or test"}
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "resize shorter side + centre-crop to this; null keeps the size"},
    )
    hflip: bool = field(
        default=False, metadata={"help": "random horizontal flips of training batches"}
    )
    val_fraction: float = field(
        default=0.0, metadata={"help": "fraction of the train split held out as 'val' (seeded)"}
    )
    split_seed: int = field(default=0, metadata={"help": "seed of the train/val permutation"})
    cache: bool = field(default=True, metadata={"help": "cache decoded image folders as .npz"})

    def __post_init__(self) -> None:
        check(
            0.0 <= self.val_fraction < 1.0,
            "val_fraction",
            f"must be in [0, 1), got {self.val_fraction}",
        )
        check(
            self.image_size is None or self.image_size >= 1,
            "image_size",
            f"must be >= 1, got {self.image_size}",
        )
        check(
            self.split != "val" or self.val_fraction > 0,
            "val_fraction",
            "split 'val' needs val_fraction > 0",
        )


def _first_dir(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_dir()), None)


def _read(name: str, split: str, root: Path, image_size: int | None, cache: bool):
    """(uint8 images, int64 labels, classes) of the raw `train`/`test` split, as numpy."""
    cache_dir = cache_root() / "images" if cache else None
    if name == "mnist":
        folder = root / "mnist" if (root / "mnist").is_dir() else root
        images, labels = read_mnist(folder, split)
        return images, labels, [str(i) for i in range(10)]
    if name == "cifar10":
        pickles = _first_dir(root / "cifar10" / "cifar-10-batches-py", root / "cifar-10-batches-py")
        if pickles is not None:
            return read_cifar_pickles(pickles, split)
        folder = _first_dir(root / "cifar10" / split, root / split)
        if folder is None:
            raise MissingFileError(
                f"CIFAR-10 not found under {root}: expected cifar-10-batches-py/ or "
                f"cifar10/{split}/<class>/*.jpg (get it with `dae data download cifar10`)"
            )
        return read_image_folder(folder, image_size, cache_dir)
    if name == "folder":
        folder = _first_dir(root / split) or (root if split == "train" else None)
        if folder is None:
            raise MissingFileError(f"image folder {root} has no '{split}' subfolder")
        return read_image_folder(folder, image_size, cache_dir)
    raise UnknownNameError(f"unknown dataset {name!r}; known: mnist, cifar10, folder")


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded split of `range(n)` into sorted (train, val) indices; val has round(n * fraction)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def load_images(
    name: DatasetName,
    split: Split = "train",
    root: str | Path | None = None,
    image_size: int | None = None,
    val_fraction: float = 0.0,
    split_seed: int = 0,
    cache: bool = True,
) -> LabelledImages:
    """Load a dataset split as uint8 `(N, C, H, W)`; see the module docstring for where it looks."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    data_root = resolve_data_root(root)
    if root and not data_root.is_dir():
        raise ConfigError(
            "data.root", f"{root}: no such folder (seen from {Path.cwd()}; runs store it absolute)"
        )
    raw_split = "test" if split == "test" else "train"
    images, labels, classes = _read(name, raw_split, data_root, image_size, cache)
    data = LabelledImages(
        torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), classes
    )
    if image_size is not None and data.images.shape[-2:] != (image_size, image_size):
        data.images = resize_center_crop(data.images, image_size)
    if split != "test" and val_fraction > 0:
        train_idx, val_idx = train_val_indices(len(data), val_fraction, split_seed)
        data = data.subset(val_idx if split == "val" else train_idx)
    elif split == "val":
        raise ValueError("split 'val' needs val_fraction > 0")
    return data


def load_from_config(cfg: ImageDataConfig) -> LabelledImages:
    """`load_images` with the fields of an `ImageDataConfig`."""
    return load_images(
        cfg.name, cfg.split, cfg.root, cfg.image_size, cfg.val_fraction, cfg.split_seed, cfg.cache
    )


def float_batch(
    data: LabelledImages, index: torch.Tensor, hflip: bool = False, seed: int | None = None
) -> torch.Tensor:
    """Images at `index` as float `[-1, 1]`, flipped at random if `hflip` (seeded: a pure function
    of `seed`, e.g. the training step, for exact resume)."""
    images = data.images[index]
    if hflip:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        images = random_hflip(images, gen)
    return to_float(images)


__all__ = [
    "DataFormatError",
    "ImageDataConfig",
    "LabelledImages",
    "float_batch",
    "load_from_config",
    "load_images",
    "resolve_data_root",
    "to_float",
    "to_uint8",
    "train_val_indices",
]
