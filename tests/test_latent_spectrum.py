"""scripts/latent_spectrum.py on a tiny MNIST VQ run: it agrees with what training logged on the
same test subset, and a kept checkpoint reads as the run it came from."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from dae.cli import main

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "latent_spectrum", ROOT / "scripts/latent_spectrum.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spectrum_of_a_run_and_of_its_kept_checkpoint(tmp_path, data_root, capsys):
    run = tmp_path / "run"
    sets = [
        f"data.root={data_root}",
        "model.ch=16",
        "model.norm_groups=8",
        "train.steps=4",
        "train.batch_size=8",
        "train.log_every=2",
        "train.ckpt_every=2",
        "train.ema_decay=0",
        "train.progress=false",
        "train.tensorboard=false",
        "log.test_every=2",
        "log.test_images=40",
        "log.image_every=0",
        "schedule.mode=dae",
    ]
    args = [a for s in sets for a in ("--set", s)]
    assert main(["train", "configs/mnist_vqgan.yaml", "--out", str(run), *args]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    kept = tmp_path / "kept.pt"
    shutil.copy(run / "checkpoints" / "last.pt", kept)
    capsys.readouterr()
    script, png = load_script(), tmp_path / "spectrum.png"
    assert script.main([str(run), f"{run}={kept}", "-n", "40", "--plot", str(png)]) == 0
    final, checkpoint = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    # the same 40 images, the same full decoder: training's last held-out row, recomputed
    assert final["step"] == checkpoint["step"] == 4 and final["jump_step"] is None
    assert final["code_dims"] == rows[-1]["test_latent_dims"]
    assert final["test_l1"] == pytest.approx(rows[-1]["test_rec"], rel=1e-4)
    assert final["z_fractions"] == checkpoint["z_fractions"]  # the last checkpoint = the weights
    assert final["z_fractions"] == sorted(final["z_fractions"], reverse=True)
    assert 0 < sum(final["code_fractions"]) <= 1 + 1e-6
    assert png.stat().st_size > 5_000
