"""Bad input and faults at the foundation level: each gives a clear error and loses nothing.
(Data files are covered in the data tests; the full list is docs/robustness.md.)"""

import errno

import pytest
import torch

from dae import files
from dae.cli import main
from dae.errors import CheckpointError
from dae.files import load_checkpoint, save_checkpoint

TOY = [
    "train",
    "configs/toy_vae.yaml",
    "--set",
    "train.progress=false",
    "--set",
    "train.steps=30",
    "--set",
    "train.ckpt_every=10",
    "--set",
    "train.tensorboard=false",
]


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(4)})

    def full_disk(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left.*previous checkpoint is kept"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(4)})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_full_disk_during_training_exits_cleanly(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real_save = files.torch.save

    def fills_up(obj, f):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(files.torch, "save", fills_up)
    out = tmp_path / "run"
    assert main([*TOY, "--out", str(out)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert load_checkpoint(out / "checkpoints/last.pt")["step"] == 10
    assert main([*TOY, "--out", str(out), "--resume"]) == 0  # and the run can go on


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.steps=-1", "train.steps"),
        ("schedule.stage1_fraction=1.2", "schedule.stage1_fraction"),
        ("schedule.mode=decoupled", "schedule.mode"),
        ("train.batch_size=abc", "train.batch_size"),
        ("model.hidden=3", "model.hidden"),
    ],
)
def test_bad_config_values_exit_2_and_name_the_key(tmp_path, capsys, override, key):
    assert main([*TOY, "--set", override, "--out", str(tmp_path / "r")]) == 2
    assert f"error: {key}:" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing created for a run that never started


def test_corrupt_checkpoint_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TOY, "--out", str(out)]) == 0
    (out / "checkpoints/last.pt").write_bytes(b"not a checkpoint")
    assert main([*TOY, "--out", str(out), "--resume"]) == 1
    assert "last.pt" in capsys.readouterr().err


def test_nan_loss_exits_1_with_clear_message(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TOY, "--out", str(out), "--set", "optim.lr=1e30"]) == 1
    err = capsys.readouterr().err
    # lr 1e30 breaks step 2, before the first checkpoint (step 10): none may be named.
    assert "non-finite 'ae' loss in step 2 (joint); stopped; no checkpoint was written yet" in err
    assert not (out / "checkpoints" / "last.pt").exists()


def _gray_folder(root, n=8):
    from PIL import Image

    (root / "train" / "a").mkdir(parents=True)
    for i in range(n):
        Image.new("L", (32, 32)).save(root / "train" / "a" / f"{i}.png")


def _train_on_folder(root, out, *sets: str) -> list[str]:
    """`dae train` of the CIFAR-10 VQGAN preset on an image folder, 2 steps."""
    args = ["train", "configs/cifar10_vqgan.yaml", "--out", str(out)]
    for item in ("data.name=folder", f"data.root={root}", "train.steps=2", *sets):
        args += ["--set", item]
    return args


def test_image_mode_mismatch_names_the_key(tmp_path, capsys):
    _gray_folder(tmp_path / "gray")
    args = _train_on_folder(tmp_path / "gray", tmp_path / "run", "train.batch_size=4")
    assert main(args) == 2
    assert "model.in_channels: is 3, the images have 1" in capsys.readouterr().err


def test_empty_dataset_names_the_folder(tmp_path, capsys):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    assert main(_train_on_folder(tmp_path / "empty", tmp_path / "run")) == 1
    assert f"{tmp_path / 'empty' / 'train'}: no images" in capsys.readouterr().err
