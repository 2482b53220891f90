"""Streaming image source (`data.source: stream`): images stay encoded on disk and are decoded,
resized, centre-cropped and flipped in DataLoader worker processes, one step's batch at a time.

Memory holds only the list of files (or, for tar shards, each member's byte range), never pixels,
so peak RSS does not grow with the dataset. Two layouts are read:
  folder: `root/<class>/*.jpg|png` or flat `root/*.jpg|png` (the same listing as `source: memory`);
  shards: `root/*.tar`, WebDataset layout (`key.jpg` / `key.png` members, other members such as
          `key.cls` ignored), made from a folder by `dae data shard`.
Tar members are read by byte offset from an index built once at start-up (headers only), so any
image is one seek away: the batch of a step stays `EpochSampler.indices(step)`, a pure function of
(seed, step), on every rank and with any number of workers, and a resumed run sees the same batches
as an uninterrupted one. Each rank decodes only its own slice of a global batch.
"""

from __future__ import annotations

import ctypes
import io
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dae.data.formats import DataFormatError, decode_image, list_image_folder
from dae.data.sampler import EpochSampler
from dae.data.shards import TarMember, index_tar_shards, list_tar_shards
from dae.data.splits import split_folder, train_val_indices
from dae.data.transforms import random_hflip
from dae.paths import resolve_data_root

log = logging.getLogger(__name__)

BadImagePolicy = Literal["error", "skip"]


class StreamImages:
    """Encoded images addressed by index; `pixels(index)` decodes them to uint8 `(B, C, S, S)`.

    A file that does not decode raises `DataFormatError` naming it (`on_bad_image: error`), or
    (`skip`) is replaced by the next decodable image in index order, so batches keep their size
    and stay a pure function of the index; the replaced files are kept in `last_skipped`.
    """

    def __init__(
        self, entries: list[Path] | list[TarMember], size: int, on_bad_image: BadImagePolicy
    ):
        if not entries:
            raise DataFormatError("no images to stream")
        self.entries, self.size, self.on_bad_image = entries, size, on_bad_image
        self.last_skipped: list[str] = []
        first = self.pixels(torch.arange(1))  # fails early on an unreadable dataset
        self.image_shape: tuple[int, int, int] = tuple(first.shape[1:])

    def __len__(self) -> int:
        return len(self.entries)

    def subset(self, index: torch.Tensor) -> StreamImages:
        """The images at `index`, still encoded (the interface `LabelledImages` shares)."""
        return StreamImages([self.entries[int(i)] for i in index], self.size, self.on_bad_image)

    def name(self, i: int) -> str:
        entry = self.entries[i]
        return f"{entry.shard}:{entry.name}" if isinstance(entry, TarMember) else str(entry)

    def decode(self, i: int) -> np.ndarray:
        """Image `i` as uint8 `(C, size, size)`."""
        entry = self.entries[i]
        if isinstance(entry, TarMember):
            try:
                with open(entry.shard, "rb") as f:
                    f.seek(entry.offset)
                    raw = f.read(entry.size)
            except OSError as err:
                raise DataFormatError(f"{self.name(i)}: unreadable ({err})") from None
            return decode_image(io.BytesIO(raw), self.name(i), self.size)
        return decode_image(entry, self.name(i), self.size)

    def _decode_or_next(self, i: int) -> np.ndarray:
        for k in range(len(self)):
            j = (i + k) % len(self)
            try:
                return self.decode(j)
            except DataFormatError:
                if self.on_bad_image == "error":
                    raise
                self.last_skipped.append(self.name(j))
        raise DataFormatError("no image of the dataset decodes")

    def pixels(self, index: torch.Tensor, log_skipped: bool = True) -> torch.Tensor:
        """uint8 `(B, C, size, size)` of the images at `index`; skipped files are logged here
        unless the caller reports them itself (`log_skipped=False`: the training loader)."""
        self.last_skipped = []
        arrays = [self._decode_or_next(int(i)) for i in index]
        if log_skipped:
            _log_skipped(self.last_skipped)
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:  # grey and colour files mixed in one dataset
            raise DataFormatError(
                f"images of different channel counts {sorted(shapes)} among "
                f"{[self.name(int(i)) for i in index]}"
            )
        return torch.from_numpy(np.stack(arrays))


def _log_skipped(names: list[str]) -> None:
    for name in names:
        log.warning("data.on_bad_image=skip: skipped undecodable image %s", name)


class StepBatches(torch.utils.data.Dataset):
    """Item `step` is this rank's batch of that step: (uint8 pixels, skipped files, error or None).

    A whole batch per item, so one worker decodes one step; errors travel back as text, so the
    main process raises one clean `DataFormatError` instead of a worker traceback.
    """

    def __init__(self, images: StreamImages, sampler: EpochSampler, hflip: bool, seed: int):
        self.images, self.sampler, self.hflip, self.seed = images, sampler, hflip, seed

    def __getitem__(self, step: int) -> tuple[torch.Tensor | None, list[str], str | None]:
        try:
            pixels = self.images.pixels(self.sampler.indices(step), log_skipped=False)
        except DataFormatError as err:
            return None, [], str(err)
        if self.hflip:  # the same seeded flips as the memory path (`float_batch`)
            pixels = random_hflip(pixels, torch.Generator().manual_seed(self.seed + step))
        return pixels, self.images.last_skipped, None


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers decode with PIL; torch threads would only contend


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def fix_mmap_threshold(size: int = 1 << 20) -> None:
    """Have glibc serve every allocation of `size` bytes or more as its own mapping, returned to
    the OS when freed.

    By default glibc raises this threshold after the first large free and then serves later
    batch-sized tensors from the heap, where the small objects of each worker message pin the
    heap's top: measured with 2 workers at 256x256, the training process grew by ~20 MB a step,
    without bound. A fixed threshold keeps it flat (docs/training_at_scale.md). Not glibc
    (macOS, musl): nothing to do.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, size)


class StreamLoader:
    """`batch(step)`: the uint8 batch of `step`, decoded ahead by `workers` processes.

    The DataLoader iterates steps `start, start + 1, ...`; asking for any other step (a resume,
    or a one-off request) starts a fresh iterator there, so the result never depends on history.
    """

    def __init__(
        self,
        images: StreamImages,
        sampler: EpochSampler,
        *,
        hflip: bool,
        seed: int,
        steps: int,
        workers: int,
        prefetch: int,
        pin_memory: bool,
    ):
        if workers:
            fix_mmap_threshold()
        self.dataset = StepBatches(images, sampler, hflip, seed)
        self.steps, self.workers, self.prefetch, self.pin_memory = (
            steps,
            workers,
            prefetch,
            pin_memory,
        )
        self.skipped = 0  # files replaced in the last batch
        self._iter: Any = None
        self._next = -1

    def _start(self, step: int) -> None:
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=None,  # an item is already a batch
            sampler=range(step, max(self.steps, step + 1)),
            num_workers=self.workers,
            prefetch_factor=self.prefetch if self.workers else None,
            pin_memory=self.pin_memory,
            worker_init_fn=_one_thread if self.workers else None,
            # Its own generator: a DataLoader iterator otherwise draws its base seed from the
            # global RNG, which a resumed run would then advance at a different step than an
            # uninterrupted one, changing every later dropout mask / posterior sample.
            generator=torch.Generator().manual_seed(self.dataset.seed + step),
        )
        self._iter, self._next = iter(loader), step

    def batch(self, step: int) -> torch.Tensor:
        if self._iter is None or step != self._next:
            self._start(step)
        pixels, skipped, error = next(self._iter)
        self._next = step + 1
        if error is not None:
            self._iter = None
            raise DataFormatError(error)
        _log_skipped(skipped)  # here, in the training process, whichever worker decoded them
        self.skipped = len(skipped)
        return pixels


def stream_loader(
    data: Any,
    sampler: EpochSampler,
    data_cfg: Any,
    train_cfg: Any,
    device: torch.device,
) -> StreamLoader | None:
    """The loader of a training task's `StreamImages` (`data_cfg`: its `ImageDataConfig`); None
    for in-memory images."""
    if not isinstance(data, StreamImages):
        return None
    return StreamLoader(
        data,
        sampler,
        hflip=data_cfg.hflip,
        seed=train_cfg.batch_seed,
        steps=train_cfg.steps,
        workers=data_cfg.workers,
        prefetch=data_cfg.prefetch,
        pin_memory=device.type == "cuda",
    )


class SkippedImages(nn.Module):
    """A checkpointed count of skipped files, so a resumed run logs the same running total."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros((), dtype=torch.long))


class LogSkippedImages:
    """Per-step hook: add the loader's skipped files (summed over ranks) to the running total and
    put it in the metrics as `skipped_images`."""

    def __init__(self, loader: StreamLoader, counter: SkippedImages):
        self.loader, self.counter = loader, counter

    def __call__(self, trainer: Any, logs: dict[str, float]) -> None:
        count = torch.tensor(self.loader.skipped, dtype=torch.long)
        if trainer.dist.enabled:
            torch.distributed.all_reduce(count)
        self.counter.total += count
        logs["skipped_images"] = float(self.counter.total)


def open_stream(
    root: str | Path | None,
    split: str,
    image_size: int,
    val_fraction: float = 0.0,
    split_seed: int = 0,
    on_bad_image: BadImagePolicy = "error",
) -> StreamImages:
    """A `StreamImages` for `data.source: stream` (a `folder` dataset): the split's tar shards if
    its folder has any, else its image files; `val_fraction` splits exactly as the memory path."""
    folder = split_folder(resolve_data_root(root), "test" if split == "test" else "train")
    shards = list_tar_shards(folder)
    entries: list[Any] = index_tar_shards(shards) if shards else list_image_folder(folder)[0]
    if split != "test" and val_fraction > 0:
        train_idx, val_idx = train_val_indices(len(entries), val_fraction, split_seed)
        entries = [entries[int(i)] for i in (val_idx if split == "val" else train_idx)]
    return StreamImages(entries, image_size, on_bad_image)
