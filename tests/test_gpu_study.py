"""The GPU study's pieces on CPU: packed data, channels_last, the aux decoder's device, and
`scripts/gpu_cifar10_study.sh` end to end at a tiny size (TINY=1)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dae.autoencoder.vqgan import VQGAN, VQGANConfig
from dae.data.formats import DataFormatError
from dae.data.images import load_images
from dae.data.packed import pack_images
from dae.errors import RunFolderError
from dae.schedule import DAESchedule
from dae.train.image_task import VQGANTask
from dae.train.trainer import Trainer
from image_utils import synthetic_images, tiny_config

REPO = Path(__file__).resolve().parents[1]


def test_packed_subset_loads_as_the_dataset(tmp_path, data_root):
    out = tmp_path / "mnist_small.npz"
    pack_images("mnist", out, n_train=40, n_test=10, root=str(data_root), seed=3)
    full = load_images("mnist", "test", data_root)
    packed = load_images("mnist", "test", out)
    assert packed.images.dtype == torch.uint8 and packed.images.shape == (10, 1, 28, 28)
    assert packed.classes == full.classes
    # Each packed image is the original one with the same label (a subset, not a re-encoding).
    for image, label in zip(packed.images, packed.labels):
        match = (full.images == image).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and label in full.labels[match]
    assert len(load_images("mnist", "train", out)) == 40
    assert len(load_images("mnist", "val", out, val_fraction=0.25)) == 10
    with pytest.raises(DataFormatError, match="holds 'mnist'"):
        load_images("cifar10", "train", out)
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(DataFormatError, match="not a `dae data pack` file"):
        load_images("mnist", "train", bad)
    # packing again replaces the file only when asked
    before = out.read_bytes()
    with pytest.raises(RunFolderError, match="already exists; pass --overwrite"):
        pack_images("mnist", out, n_train=20, n_test=10, root=str(data_root), seed=4)
    assert out.read_bytes() == before
    pack_images("mnist", out, n_train=20, n_test=10, root=str(data_root), seed=4, overwrite=True)
    assert len(load_images("mnist", "train", out)) == 20


def test_pack_refuses_a_file_at_out_before_reading_data(tmp_path, capsys):
    from dae.cli import main

    mine = tmp_path / "mine.npz"
    mine.write_text("a file of the user's")
    args = ["data", "pack", "mnist", "--out", str(mine), "--n-train", "4", "--n-test", "4"]
    assert main([*args, "--root", str(tmp_path / "no-data")]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert mine.read_text() == "a file of the user's"


def test_aux_decoder_follows_the_model_device():
    model = VQGAN(VQGANConfig(**tiny_config().model.__dict__)).to("meta")
    DAESchedule(tiny_config(schedule={"mode": "dae"}).schedule, 4).prepare(model)
    assert {p.device.type for p in model.aux_decoder.parameters()} == {"meta"}


def _train(channels_last: bool):
    # No re-initialisation at stage 2: `reset_parameters` fills a channels_last tensor in memory
    # order, i.e. the same random numbers at other positions (a different, equally valid init).
    stage2 = {"decoder_init": "continue", "reset_discriminator": False}
    cfg = tiny_config(
        train={"steps": 4, "channels_last": channels_last},
        schedule={"mode": "dae", "weak_decoder": "aux", "stage2": stage2},
        disc={"start": 0},
    )
    task = VQGANTask(cfg, synthetic_images(8))
    rows = Trainer(task, DAESchedule(cfg.schedule, 4), cfg.train, cfg.optim).fit()
    return task, rows


def test_channels_last_changes_the_layout_not_the_training():
    ref_task, ref_rows = _train(False)
    task, rows = _train(True)
    conv = task.model.aux_decoder.decoder.conv_in.weight  # added by the schedule after init
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref_rows], rel=1e-4)
    # Outputs, not weights: attention key biases get ~0 gradients, which Adam turns into noise.
    x = synthetic_images(4).images.float() / 127.5 - 1
    with torch.no_grad():
        out, ref = task.model.eval()(x).sample, ref_task.model.eval()(x).sample
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)


@pytest.mark.slow  # ~90 CPU-seconds (calibration + 5 processes); many minutes on a loaded machine
def test_gpu_script_runs_tiny_on_cpu(tmp_path, data_root):
    env = {
        **os.environ,
        "TINY": "1",
        "SEEDS": "1",
        "PYTHON": sys.executable,
        "DAE_DATA": str(data_root),
        "DATA": str(tmp_path / "c10_tiny.npz"),
        "RUNS": str(tmp_path / "runs"),
        "OUT": str(tmp_path / "out"),
        "OMP_NUM_THREADS": "1",
        # The H200 default is bf16; on a CPU without native bf16 emulated bf16 runs at 0.3-0.4x,
        # which made this test a third of the suite's time there. auto resolves to fp32 on such a CPU.
        "PRECISION": "auto",
        "DISC_NORM": "actnorm",
        "JOINT_MAX_WEIGHT": "0.5",  # the other three arm settings keep their defaults
    }
    # The wheel folder is for machines without diffusers; here it is installed.
    if importlib.util.find_spec("diffusers") is not None:
        env["SKIP_WHEELS"] = "1"
    script = REPO / "scripts/gpu_cifar10_study.sh"
    proc = subprocess.run(
        ["bash", str(script), "prepare", "run"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert list(summary["table"]) == ["baseline", "dae-aux_width-0.5"]
    # 4 steps: stage 2 starts at 2; the joint model keeps taming's two batches, its cap as set
    assert summary["baseline_overrides"] == [
        "disc.start=2",
        "disc.shared_batch=false",
        "disc.max_weight=0.5",
    ]
    run = tmp_path / "out" / "dae-aux_width-0.5" / "seed0"
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["channels_last"] and cfg["train"]["precision"] == "auto"
    assert cfg["disc"]["shared_batch"] is True and cfg["disc"]["norm"] == "actnorm"
    assert cfg["disc"]["max_weight"] == 0.05
    joint = yaml.safe_load((tmp_path / "out" / "baseline" / "seed0" / "config.yaml").read_text())
    assert joint["disc"]["shared_batch"] is False and joint["disc"]["max_weight"] == 0.5
    assert joint["disc"]["norm"] == "actnorm"
    assert "PRECISION=${PRECISION:-bf16}" in script.read_text()  # the GPU study's default
    assert cfg["train"]["steps"] == 4 and cfg["data"]["root"].endswith("c10_tiny.npz")
    assert cfg["optim"]["decay"] == "cosine" and cfg["log"]["test_every"] == 2
    assert json.loads((run / "eval.json").read_text())["metrics"]["psnr"] > 0
    # Held-out test curve rows for the curves figure, at every TEST_EVERY steps.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "test_rec" in r] == [2, 4]
    # The measured step time sized the study: capped here by the EPOCHS budget (4 steps).
    cal = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert cal["seconds_per_step"] > 0
    assert (cal["jobs"], cal["steps"], cal["probe_steps"]) == (2, 4, 4)
    probe = json.loads((run / "probe" / "probe.json").read_text())
    assert probe["config"]["steps"] == 4 and len(probe["runs"][0]["decoders"]) == 3
    assert not list((tmp_path / "out").rglob("*.safetensors"))  # weights stay behind
    assert (tmp_path / "out" / "sweep.md").is_file()
