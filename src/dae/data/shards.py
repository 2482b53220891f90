"""Tar shards in the WebDataset layout: write them from an image folder, index them for reading.

A shard is an uncompressed tar of samples `<key>.<ext>` (the encoded image, bytes unchanged) and
`<key>.cls` (the class index as text), as WebDataset and `img2dataset` write them. Uncompressed,
so a member's bytes sit at a fixed offset and the streaming source can read any image with one
seek (`index_tar_shards` reads only the headers).
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dae.data.formats import IMAGE_SUFFIXES, DataFormatError, list_image_folder
from dae.errors import OutputExistsError
from dae.files import atomic_write


@dataclass(frozen=True)
class TarMember:
    """Where one image's bytes lie: shard file, offset of the data, length, member name."""

    shard: Path
    offset: int
    size: int
    name: str


def list_tar_shards(folder: Path) -> list[Path]:
    """The `*.tar` files of `folder`, sorted (an empty list if there are none)."""
    return sorted(p for p in folder.iterdir() if p.suffix == ".tar" and p.is_file())


def index_tar_shards(shards: list[Path]) -> list[TarMember]:
    """One entry per sample key (`dir/key.ext`, WebDataset's grouping) that has an image member."""
    members = []
    for shard in shards:
        try:
            with tarfile.open(
                shard, "r:"
            ) as tar:  # "r:": uncompressed only, so offsets are seekable
                seen: set[str] = set()
                for info in tar:
                    suffix = Path(info.name).suffix.lower()
                    if not info.isfile() or suffix not in IMAGE_SUFFIXES:
                        continue
                    key = _key(info.name)
                    if key in seen:
                        raise DataFormatError(f"{shard}: sample {key!r} has two images")
                    seen.add(key)
                    members.append(TarMember(shard, info.offset_data, info.size, info.name))
        except (tarfile.TarError, OSError) as err:
            raise DataFormatError(f"{shard}: not a readable uncompressed tar ({err})") from None
    return members


def _key(name: str) -> str:
    """WebDataset's sample key: the path up to the first dot of the file name."""
    head, slash, base = name.rpartition("/")
    return head + slash + base.split(".", 1)[0]


def write_shards(folder: Path, out: Path, per_shard: int = 10_000) -> list[Path]:
    """Pack `folder` (the `folder` dataset layout) into `out/shard-NNNNNN.tar`, `per_shard` images
    each, in the listing's (sorted) order; each shard is written atomically. Returns the shards."""
    if per_shard < 1:
        raise ValueError(f"per_shard must be >= 1, got {per_shard}")
    files, labels, classes = list_image_folder(folder)
    out.mkdir(parents=True, exist_ok=True)
    if list_tar_shards(out) or (out / "classes.txt").exists():
        raise OutputExistsError(
            f"{out} already holds .tar shards or a classes.txt; choose an empty folder"
        )
    shards = []
    for first in range(0, len(files), per_shard):
        path = out / f"shard-{first // per_shard:06d}.tar"

        def write(tmp: Path, first: int = first) -> None:
            with tarfile.open(tmp, "w") as tar:
                for i in range(first, min(first + per_shard, len(files))):
                    key = f"{i:09d}"
                    tar.add(files[i], arcname=f"{key}{files[i].suffix.lower()}")
                    _add_bytes(tar, f"{key}.cls", str(labels[i]).encode())

        atomic_write(path, write)
        shards.append(path)
    atomic_write(out / "classes.txt", lambda tmp: tmp.write_text("\n".join(classes) + "\n"))
    return shards


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
