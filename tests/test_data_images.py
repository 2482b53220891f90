"""Image loaders: MNIST idx, CIFAR-10 pickles, image folders, cache, splits, transforms, errors."""

from __future__ import annotations

import gzip
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dae.data.formats import DataFormatError, read_idx
from dae.data.images import ImageDataConfig, load_from_config, load_images, resolve_data_root
from dae.data.transforms import center_crop, random_hflip, resize, to_float, to_uint8


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def make_mnist(folder: Path, n: int = 12, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", labels, gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_roundtrip(tmp_path, gz):
    images, labels = make_mnist(tmp_path / "mnist", gz=gz)
    data = load_images("mnist", "train", root=tmp_path)
    assert data.images.shape == (12, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], torch.from_numpy(images))
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == labels.tolist()
    assert data.classes == [str(i) for i in range(10)]


def test_truncated_idx_names_the_file(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.*truncated"):
        load_images("mnist", "train", root=tmp_path)
    bad_gz = tmp_path / "x.gz"
    bad_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abcde")[:-6])
    with pytest.raises(DataFormatError, match="x.gz"):
        read_idx(bad_gz)


def test_mismatched_mnist_lengths(tmp_path):
    make_mnist(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8), gz=False)
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte.*do not match"):
        load_images("mnist", "test", root=tmp_path)


def make_cifar_pickles(folder: Path, per_batch: int = 4) -> np.ndarray:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    all_data = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch = {b"data": data, b"labels": list(range(per_batch)), b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        all_data.append(data)
    return np.concatenate(all_data)


def test_cifar_pickles(tmp_path):
    data_all = make_cifar_pickles(tmp_path / "cifar-10-batches-py")
    train = load_images("cifar10", "train", root=tmp_path)
    test = load_images("cifar10", "test", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert torch.equal(train.images.reshape(20, -1), torch.from_numpy(data_all[:20]))
    assert train.classes[0] == "airplane" and train.labels[:4].tolist() == [0, 1, 2, 3]


def test_cifar_pickle_with_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar_pickles(folder)

    # A pickle that would call os.system on load: the restricted unpickler must refuse it.
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2)
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(DataFormatError, match="test_batch.*not allowed"):
        load_images("cifar10", "test", root=tmp_path)


def make_folder(root: Path, classes=("cat", "dog"), n=3, size=(8, 8)) -> None:
    rng = np.random.default_rng(2)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:04d}.png")


def test_image_folder_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DAE_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "imgs" / "train")
    first = load_images("folder", "train", root=tmp_path / "imgs")
    assert first.images.shape == (6, 3, 8, 8) and first.classes == ["cat", "dog"]
    assert first.labels.tolist() == [0, 0, 0, 1, 1, 1]
    cached = list((tmp_path / "cache" / "images").glob("*.npz"))
    assert len(cached) == 1
    second = load_images("folder", "train", root=tmp_path / "imgs")
    assert torch.equal(first.images, second.images) and second.classes == first.classes
    # Editing a file changes the key: a new cache entry, with the new pixels.
    png = tmp_path / "imgs" / "train" / "cat" / "0000.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    os.utime(png, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    third = load_images("folder", "train", root=tmp_path / "imgs")
    assert (
        third.images[0].sum() == 0 and len(list((tmp_path / "cache" / "images").glob("*.npz"))) == 2
    )


def test_flat_folder_mixed_sizes_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DAE_CACHE", str(tmp_path / "cache"))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.png")
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(flat / "b.jpg")
    with pytest.raises(DataFormatError, match="b.jpg.*differs"):
        load_images("folder", "train", root=flat, cache=False)
    data = load_images("folder", "train", root=flat, image_size=6, cache=False)
    assert data.images.shape == (2, 3, 6, 6) and data.classes == ["flat"]
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="cls: no images"):
        load_images("folder", "train", root=tmp_path / "empty")
    (flat / "c.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="c.png: cannot decode"):
        load_images("folder", "train", root=flat, image_size=6, cache=False)


def test_val_split_is_deterministic_and_disjoint(tmp_path):
    make_mnist(tmp_path, n=40)
    cfg = ImageDataConfig(
        name="mnist", root=str(tmp_path), split="val", val_fraction=0.25, split_seed=3
    )
    val = load_from_config(cfg)
    again = load_from_config(cfg)
    cfg.split = "train"
    train = load_from_config(cfg)
    assert len(val) == 10 and len(train) == 30 and torch.equal(val.images, again.images)
    rows = {bytes(x.numpy()) for x in train.images} & {bytes(x.numpy()) for x in val.images}
    assert not rows


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DAE_DATA", str(tmp_path))
    assert resolve_data_root(None) == tmp_path
    assert resolve_data_root("/x/y") == Path("/x/y")
    monkeypatch.delenv("DAE_DATA")
    assert resolve_data_root(None) == Path.home() / ".cache" / "dae" / "data"


def test_transforms():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.uint8).reshape(2, 1, 4, 6)
    assert center_crop(x, 4).shape == (2, 1, 4, 4)
    assert torch.equal(center_crop(x, 4), x[..., 1:5])
    assert resize(x, 2).shape == (2, 1, 2, 3) and resize(x, 2).dtype == torch.uint8
    f = to_float(torch.tensor([0, 255, 128], dtype=torch.uint8))
    assert f.tolist()[:2] == [-1.0, 1.0] and torch.equal(
        to_uint8(f), torch.tensor([0, 255, 128], dtype=torch.uint8)
    )
    gen = torch.Generator().manual_seed(0)
    flipped = random_hflip(x.repeat(50, 1, 1, 1), gen)
    is_flipped = (flipped == x.repeat(50, 1, 1, 1).flip(-1)).flatten(1).all(1)
    is_same = (flipped == x.repeat(50, 1, 1, 1)).flatten(1).all(1)
    assert bool((is_flipped | is_same).all()) and 20 < int(is_flipped.sum()) < 80


@pytest.mark.skipif(not os.environ.get("DAE_DATA"), reason="DAE_DATA not set")
def test_real_data_if_available():
    root = Path(os.environ["DAE_DATA"])
    if (root / "mnist").is_dir():
        mnist = load_images("mnist", "test")
        assert mnist.images.shape == (10000, 1, 28, 28)
        assert mnist.labels.bincount().tolist()[:2] == [980, 1135]
    if (root / "cifar10" / "test" / "cat").is_dir():
        from dae.data.formats import decode_images

        files = sorted((root / "cifar10" / "test" / "cat").glob("*.jpg"))[:5]
        assert decode_images(files).shape == (5, 3, 32, 32)
