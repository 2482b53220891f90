"""`dae data download` against a local HTTP server (never the internet), with checksum overrides."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from dae.cli import main
from dae.data import download as dl
from dae.data.formats import DataFormatError
from dae.data.images import load_images


@pytest.fixture
def server(tmp_path):
    """A local http.server on 127.0.0.1 serving `tmp_path/srv`; yields (folder, base URL)."""
    srv = tmp_path / "srv"
    srv.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(srv))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    thread.join()


def idx_gz(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.tobytes())


def test_mnist_download_checks_md5(server, tmp_path, monkeypatch):
    srv, url = server
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(np.zeros((3, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte.gz": idx_gz(np.arange(3, dtype=np.uint8)),
        "t10k-images-idx3-ubyte.gz": idx_gz(np.ones((2, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte.gz": idx_gz(np.arange(2, dtype=np.uint8)),
    }
    for name, raw in files.items():
        (srv / name).write_bytes(raw)
    sums = {name: hashlib.md5(raw).hexdigest() for name, raw in files.items()}
    monkeypatch.setitem(dl.CHECKSUMS, "mnist", sums)  # test-only override of the published MD5s
    out = tmp_path / "data" / "mnist"
    assert main(["data", "download", "mnist", "--to", str(out), "--base-url", url]) == 0
    assert load_images("mnist", "test", root=tmp_path / "data").labels.tolist() == [0, 1]

    # A corrupted file on the mirror: refused, and nothing half-written is left behind.
    (srv / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    (out / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match="t10k-labels-idx1-ubyte.gz: MD5"):
        dl.download("mnist", out, url, checksums=sums)
    assert not (out / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(out.glob(".*.tmp"))


def test_cifar_download_extracts(server, tmp_path):
    srv, url = server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            raw = pickle.dumps(
                {b"data": np.full((2, 3072), 7, np.uint8), b"labels": [1, 2]}, protocol=2
            )
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    (srv / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    sums = {"cifar-10-python.tar.gz": hashlib.md5(buf.getvalue()).hexdigest()}
    dl.download("cifar10", tmp_path / "c", url, checksums=sums)
    test = load_images("cifar10", "test", root=tmp_path / "c")
    assert test.images.shape == (2, 3, 32, 32) and int(test.images.max()) == 7


def test_missing_file_on_server(server, tmp_path):
    _, url = server
    with pytest.raises(OSError, match="cifar-10-python.tar.gz"):
        dl.download("cifar10", tmp_path / "c", url, checksums={"cifar-10-python.tar.gz": "0" * 32})


def test_published_checksums_are_the_official_ones():
    assert dl.CHECKSUMS["mnist"]["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert dl.CHECKSUMS["cifar10"]["cifar-10-python.tar.gz"] == "c58f30108f718f92721af3b95e74349a"
