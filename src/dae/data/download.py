"""Fetch the canonical MNIST / CIFAR-10 archives and check their published MD5 checksums."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from dae.errors import DataFormatError, DownloadError, UnknownNameError

# Published MD5s of the official archives (the same ones torchvision and tfds check).
CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
}
BASE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}


def md5sum(path: Path) -> str:
    """Hex MD5 of a file, read in 1 MiB blocks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path, md5: str, timeout: float) -> None:
    """Download `url` to `dest` atomically; a checksum mismatch leaves nothing behind."""
    from dae.files import atomic_write  # imports torch: not at `dae --help`

    def write(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
                while block := resp.read(1 << 20):
                    f.write(block)
        except (urllib.error.URLError, OSError) as err:
            # A user-fixable error (offline, proxy, wrong --base-url): one line, no traceback.
            raise DownloadError(
                f"download of {url} failed ({err}); offline? copy the files into the data "
                "folder by hand (docs/data.md)"
            ) from None
        got = md5sum(tmp)
        if got != md5:
            raise DataFormatError(f"{url}: MD5 {got} does not match the published {md5}; not saved")

    atomic_write(dest, write)


def download(
    name: str,
    to: Path,
    base_url: str | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> list[Path]:
    """Fetch dataset `name`'s archives into `to` (skipping files whose MD5 already matches);
    CIFAR-10 is also extracted to `to/cifar-10-batches-py`. Returns the files written."""
    if name not in CHECKSUMS:
        raise UnknownNameError(f"unknown dataset {name!r}; downloadable: {sorted(CHECKSUMS)}")
    checksums = checksums or CHECKSUMS[name]
    base = (base_url or BASE_URLS[name]).rstrip("/") + "/"
    to.mkdir(parents=True, exist_ok=True)
    files = []
    for filename, md5 in checksums.items():
        dest = to / filename
        if not (dest.is_file() and md5sum(dest) == md5):
            _fetch(base + filename, dest, md5, timeout)
        files.append(dest)
    if name == "cifar10":
        with tarfile.open(to / "cifar-10-python.tar.gz") as tar:
            tar.extractall(to, filter="data")  # "data": no absolute paths, links or devices
        files.append(to / "cifar-10-batches-py")
    return files
