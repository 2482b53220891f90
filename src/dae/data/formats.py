"""Readers for the on-disk image formats: MNIST idx, CIFAR-10 python pickles, image folders.

Every reader returns uint8 `(N, C, H, W)` numpy arrays and int64 labels, and every error a user can
fix (a truncated file, a wrong header, an empty folder, images of different sizes) names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dae.errors import DataFormatError, MissingFileError
from dae.files import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# -- MNIST idx ------------------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """An idx file (`.gz` or raw) as a uint8 array of its declared shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix says
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataFormatError(f"{path}: unreadable or truncated ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataFormatError(f"{path}: not a uint8 idx file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{path}: header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise MissingFileError(f"MNIST file {stem}(.gz) not found in {folder}")


def read_mnist(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """MNIST `train` (60k) or `test` (10k): images `(N, 1, 28, 28)`, labels `(N,)`."""
    prefix = "train" if split == "train" else "t10k"
    images_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataFormatError(
            f"{images_path} {tuple(images.shape)} and {labels_path} {tuple(labels.shape)} do not "
            "match (expected (N, H, W) images and N labels)"
        )
    return images[:, None].copy(), labels.astype(np.int64)


# -- CIFAR-10 python pickles ----------------------------------------------------------------------
class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles only plain data and numpy arrays: any other global (code) is refused.

    The official CIFAR-10 batches are Python-2 pickles of a dict holding a numpy array; pickle
    cannot be parsed without an Unpickler, so this one whitelists exactly the numpy reconstructors.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One `data_batch_i` / `test_batch` file: images `(N, 3, 32, 32)`, labels `(N,)`."""
    if not path.is_file():
        raise MissingFileError(f"CIFAR-10 batch not found: {path}")
    try:
        with open(path, "rb") as f:
            batch = _ArrayOnlyUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], batch[b"labels"]
    except (
        pickle.UnpicklingError,
        EOFError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as err:
        raise DataFormatError(f"{path}: not a readable CIFAR-10 batch ({err!r})") from None
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataFormatError(f"{path}: data {data.shape} and {len(labels)} labels do not match")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def read_cifar_pickles(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 from `cifar-10-batches-py`: train = data_batch_1..5, test = test_batch."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    parts = [read_cifar_batch(folder / n) for n in names]
    classes = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as f:
            classes = [
                c.decode() for c in _ArrayOnlyUnpickler(f, encoding="bytes").load()[b"label_names"]
            ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes


CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


# -- image folders --------------------------------------------------------------------------------
def list_image_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """Files of `folder/<class>/*.png|jpg` (classes sorted) or, flat, `folder/*.png|jpg` (one class)."""
    if not folder.is_dir():
        raise MissingFileError(f"image folder not found: {folder}")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_dirs:
        groups = [(d.name, d) for d in class_dirs]
    else:
        groups = [(folder.name, folder)]
    files, labels, classes = [], [], []
    for label, (name, d) in enumerate(groups):
        found = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataFormatError(f"{d}: no images (*{'/*'.join(IMAGE_SUFFIXES)}) in this folder")
        classes.append(name)
        files += found
        labels += [label] * len(found)
    return files, labels, classes


# Transparent pixels are composited onto this background (white, as image viewers show them).
ALPHA_BACKGROUND = (255, 255, 255)


def _to_uint8(img) -> np.ndarray:
    """A PIL image as uint8 `(H, W)` (gray) or `(H, W, 3)`: 16/32-bit gray scaled to 8 bits, not
    clipped; an alpha channel composited onto `ALPHA_BACKGROUND`, not dropped."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit PNGs open as I;16 (or I): convert("L") would clip 256..65535 to 255.
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", img.size, (*ALPHA_BACKGROUND, 255))
        gray = img.mode.startswith("L")
        img = Image.alpha_composite(background, img.convert("RGBA"))
        img = img.convert("L" if gray else "RGB")
    elif img.mode not in ("L", "RGB"):
        img = img.convert("L" if img.mode == "1" else "RGB")
    return np.asarray(img, dtype=np.uint8)


def decode_images(files: list[Path], size: int | None = None) -> np.ndarray:
    """Decode with PIL to uint8 `(N, C, H, W)`; with `size`, each is resized (shorter side) and
    centre-cropped to `size x size` first, so folders of mixed sizes stack. A folder mixing
    grayscale and RGB images is converted to RGB (said in a line on stderr)."""
    import sys

    out = [decode_image(path, str(path), size) for path in files]
    gray = [i for i, a in enumerate(out) if len(a) == 1]
    if gray and len(gray) < len(out):
        print(
            f"{files[0].parent.parent}: {len(gray)} of {len(out)} images are grayscale, the rest "
            "RGB; converting the grayscale ones to RGB",
            file=sys.stderr,
        )
        for i in gray:
            out[i] = np.repeat(out[i], 3, axis=0)
    for path, arr in zip(files, out, strict=True):
        if arr.shape != out[0].shape:
            raise DataFormatError(
                f"{path}: size {arr.shape[1:]} differs from {files[0]} {out[0].shape[1:]}; "
                "set data.image_size to resize every image to one size"
            )
    return np.stack(out)


def decode_image(source: Path | BinaryIO, name: str, size: int | None = None) -> np.ndarray:
    """One image file (a path or an open binary file) as uint8 `(C, H, W)`, grey or RGB (16-bit
    scaled, alpha composited: `_to_uint8`), resized and centre-cropped to `size` when given; a file
    PIL cannot decode, or one too large to decode safely, raises naming `name`."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        # PIL warns above MAX_IMAGE_PIXELS and raises at twice that: both mean an image too
        # large to decode safely (a decompression bomb), so both are one error here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                arr = _to_uint8(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataFormatError(
            f"{name}: too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels; "
            f"a decompression bomb?): {err}"
        ) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise DataFormatError(f"{name}: cannot decode image ({err})") from None
    if size is not None:
        arr = np.asarray(_fit(Image.fromarray(arr), size), dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)


def _fit(img, size: int):
    """Resize the shorter side to `size` (bicubic), then centre-crop to a square."""
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def folder_cache_key(files: list[Path], labels: list[int], size: int | None) -> str:
    """A hash of the file list with sizes and mtimes: any added, removed or edited file changes it."""
    h = hashlib.sha256(f"v2 size={size}\n".encode())  # v2: 16-bit scaling, alpha compositing
    for path, label in zip(files, labels, strict=True):
        st = path.stat()
        h.update(f"{path.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\t{label}\n".encode())
    return h.hexdigest()[:32]


def read_image_folder(
    folder: Path, size: int | None = None, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An image folder decoded to uint8, from the `.npz` cache in `cache_dir` when it is fresh."""
    files, labels, classes = list_image_folder(folder)
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"{folder_cache_key(files, labels, size)}.npz"
        if cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    return z["images"], z["labels"], [str(c) for c in z["classes"]]
            except (OSError, ValueError, KeyError, EOFError):
                cache.unlink(missing_ok=True)  # a damaged cache is rebuilt, not trusted
    images = decode_images(files, size)
    labels_arr = np.asarray(labels, dtype=np.int64)
    if cache is not None:

        def write(tmp: Path) -> None:
            buf = io.BytesIO()  # np.savez appends ".npz" to plain names, so write via a buffer
            np.savez(buf, images=images, labels=labels_arr, classes=np.asarray(classes))
            tmp.write_bytes(buf.getvalue())

        atomic_write(cache, write)
        about = json.dumps({"folder": str(folder), "n": len(files)})
        atomic_write(cache_dir / f"{cache.stem}.json", lambda tmp: tmp.write_text(about))
    return images, labels_arr, classes


PACKED_KEYS = ("train_images", "train_labels", "test_images", "test_labels", "classes", "name")


# What `np.load(allow_pickle=False)` raises on a file that is not a (whole) .npy / .npz.
NUMPY_LOAD_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def numpy_load_reason(err: Exception) -> str:
    """Why np.load failed, without numpy's advice to load pickles (dae never does)."""
    if "allow_pickle" in str(err):
        return "not an .npy / .npz file"
    return str(err) or type(err).__name__


def read_packed(path: Path, name: str, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 images, int64 labels, classes) of `split` ('train' or 'test') from a packed file."""
    if not path.is_file():
        raise MissingFileError(f"packed data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in PACKED_KEYS if k not in f.files]
            if missing:
                raise DataFormatError(f"{path}: not a `dae data pack` file (missing {missing})")
            packed_name = str(f["name"])
            if packed_name != name:
                raise DataFormatError(f"{path} holds {packed_name!r}, the config asks for {name!r}")
            images, labels = f[f"{split}_images"], f[f"{split}_labels"]
            classes = [str(c) for c in f["classes"]]
    except NUMPY_LOAD_ERRORS as err:  # not a zip, truncated
        raise DataFormatError(
            f"{path}: unreadable packed data ({numpy_load_reason(err)})"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise DataFormatError(f"{path}: {split} images must be uint8 (N, C, H, W) with N labels")
    return images, labels.astype(np.int64), classes
