"""Bad files and arguments give one line naming the problem, never a traceback (issue 17)."""

import pytest
import torch

from dae.cli import main
from dae.priors.cache import LatentCache
from dae.train.checkpoint import CheckpointError
from dae.train.export import load_weights

TOY = ["train", "configs/toy_vae.yaml"]
for _item in ("train.steps=2", "train.progress=false", "train.tensorboard=false"):
    TOY += ["--set", _item]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "toy"
    assert main([*TOY, "--out", str(run)]) == 0
    return run


def test_corrupt_weights_file_is_named(toy_run, tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match=r"model.safetensors: unreadable or corrupt weights"):
        load_weights(bad)
    (toy_run / "model.safetensors").write_bytes(b"garbage")
    assert main(["evaluate", str(toy_run), "--metrics", "knn"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{toy_run}/model.safetensors: unreadable or corrupt" in err


def test_latent_codes_out_of_range_are_refused(tmp_path):
    meta = {"kind": "vq", "latent_shape": [2, 2], "classes": ["a"], "codebook_size": 8}
    codes = torch.tensor([[[0, 1], [2, 8]]], dtype=torch.int32)  # 8 is not a code of 8
    LatentCache({"codes": codes, "labels": torch.zeros(1).long()}, meta).save(tmp_path / "c")
    with pytest.raises(CheckpointError, match=r"codes outside \[0, 8\) \(min 0, max 8\)"):
        LatentCache.load(tmp_path / "c")
    (tmp_path / "c").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable or corrupt latent cache"):
        LatentCache.load(tmp_path / "c")


def test_export_to_an_existing_file_is_refused(toy_run, tmp_path, capsys):
    target = tmp_path / "model.bin"
    target.write_text("mine")
    assert main(["export", str(toy_run), "--out", str(target)]) == 1
    assert "is a file; give a folder" in capsys.readouterr().err
    assert target.read_text() == "mine"
