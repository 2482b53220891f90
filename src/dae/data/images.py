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
from dae.data.formats import (
    DataFormatError,
    read_cifar_pickles,
    read_image_folder,
    read_mnist,
    read_packed,
)
from dae.data.splits import first_dir, split_folder, train_val_indices
from dae.data.stream import StreamImages, open_stream
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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.images.shape[1:])

    def pixels(self, index: torch.Tensor) -> torch.Tensor:
        """uint8 `(B, C, H, W)` images at `index` (the interface `StreamImages` shares)."""
        return self.images[index]

    def subset(self, index: torch.Tensor) -> LabelledImages:
        """The images and labels at `index` (same classes)."""
        return LabelledImages(self.images[index], self.labels[index], self.classes)


@dataclass
class ImageDataConfig:
    name: DatasetName = field(default="cifar10", metadata={"help": "mnist, cifar10 or folder"})
    root: str | None = field(
        default=None,
        metadata={
            "help": "data root (for folder: the folder; or a .npz of `dae data pack`); "
            "default env DAE_DATA, else ~/.cache/dae/data"
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
    source: Literal["memory", "stream"] = field(
        default="memory",
        metadata={
            "help": "memory: decode the whole set into RAM once; stream: decode each batch from "
            "disk (image folder or tar shards) in DataLoader workers (see docs/training_at_scale.md)"
        },
    )
    workers: int = field(
        default=4, metadata={"help": "stream: DataLoader worker processes (0: main process)"}
    )
    prefetch: int = field(default=2, metadata={"help": "stream: batches each worker decodes ahead"})
    on_bad_image: Literal["error", "skip"] = field(
        default="error",
        metadata={
            "help": "stream: an undecodable file stops training naming it (error), or is logged, "
            "counted in the metrics as skipped_images and replaced by the next image (skip)"
        },
    )

    def __post_init__(self) -> None:
        check(self.workers >= 0, "workers", f"must be >= 0, got {self.workers}")
        check(self.prefetch >= 1, "prefetch", f"must be >= 1, got {self.prefetch}")
        if self.source == "stream":
            check(
                self.name == "folder",
                "source",
                f"stream reads image folders and tar shards (name: folder), not {self.name!r}",
            )
            check(
                self.image_size is not None,
                "image_size",
                "source: stream needs a fixed image_size (every batch is resized to it)",
            )
        check(
            self.on_bad_image == "error" or self.source == "stream",
            "on_bad_image",
            "skip needs source: stream (the memory path decodes everything up front)",
        )
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


def _read(name: str, split: str, root: Path, image_size: int | None, cache: bool):
    """(uint8 images, int64 labels, classes) of the raw `train`/`test` split, as numpy."""
    cache_dir = cache_root() / "images" if cache else None
    if root.suffix == ".npz":  # a packed subset (`dae data pack`), for machines without the files
        return read_packed(root, name, split)
    if name == "mnist":
        folder = root / "mnist" if (root / "mnist").is_dir() else root
        images, labels = read_mnist(folder, split)
        return images, labels, [str(i) for i in range(10)]
    if name == "cifar10":
        pickles = first_dir(root / "cifar10" / "cifar-10-batches-py", root / "cifar-10-batches-py")
        if pickles is not None:
            return read_cifar_pickles(pickles, split)
        folder = first_dir(root / "cifar10" / split, root / split)
        if folder is None:
            raise MissingFileError(
                f"CIFAR-10 not found under {root}: expected cifar-10-batches-py/ or "
                f"cifar10/{split}/<class>/*.jpg (get it with `dae data download cifar10`)"
            )
        return read_image_folder(folder, image_size, cache_dir)
    if name == "folder":
        return read_image_folder(split_folder(root, split), image_size, cache_dir)
    raise UnknownNameError(f"unknown dataset {name!r}; known: mnist, cifar10, folder")


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
    packed = data_root.suffix == ".npz"  # a `dae data pack` file stands in for a data root
    if root and not (data_root.is_file() if packed else data_root.is_dir()):
        what = "no such packed data file" if packed else "no such folder"
        raise ConfigError(
            "data.root", f"{root}: {what} (seen from {Path.cwd()}; runs store it absolute)"
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


def load_from_config(cfg: ImageDataConfig) -> LabelledImages | StreamImages:
    """`load_images` with the fields of an `ImageDataConfig`, or with `source: stream` the
    undecoded `StreamImages` (see `dae.data.stream`)."""
    if cfg.source == "stream":
        return open_stream(
            cfg.root, cfg.split, cfg.image_size, cfg.val_fraction, cfg.split_seed, cfg.on_bad_image
        )
    return load_in_memory(cfg)


def load_in_memory(cfg: ImageDataConfig) -> LabelledImages:
    """`load_images` with the fields of an `ImageDataConfig`, whatever its `source`: for readers
    that need every image and label at once (reference features, a prior's latent cache)."""
    return load_images(
        cfg.name, cfg.split, cfg.root, cfg.image_size, cfg.val_fraction, cfg.split_seed, cfg.cache
    )


def float_batch(
    data: LabelledImages | StreamImages,
    index: torch.Tensor,
    hflip: bool = False,
    seed: int | None = None,
) -> torch.Tensor:
    """Images at `index` as float `[-1, 1]`, flipped at random if `hflip` (seeded: a pure function
    of `seed`, e.g. the training step, for exact resume)."""
    images = data.pixels(index)
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
