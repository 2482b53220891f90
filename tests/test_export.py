"""`dae train` -> `dae export --format diffusers` -> diffusers `from_pretrained` reconstructs the
same batch bit-identically; the KL export carries the measured scaling factor."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from diffusers import AutoencoderKL, VQModel

from dae.cli import main
from dae.data.images import to_float
from dae.files import load_weights
from dae.run import Run
from image_utils import TINY_MODEL, synthetic_images, write_image_folder


def tiny_preset(tmp_path, kind: str) -> str:
    """A YAML preset of a tiny model on a folder of 16 synthetic PNGs."""
    data = synthetic_images(16)
    root = write_image_folder(tmp_path / "images", data)
    model = dict(
        TINY_MODEL,
        # (the VQGAN's dead-code usage buffers are training-only: export leaves them out)
        **(
            {"n_embed": 16, "embed_dim": 4, "restart_dead_codes": 2}
            if kind == "vqgan"
            else {"scaling_images": 8}
        ),
    )
    preset = {
        "kind": kind,
        "data": {"name": "folder", "root": str(root), "cache": False},
        "model": model,
        "disc": {"n_layers": 2, "ndf": 8, "start": 1},
        "train": {
            "steps": 3,
            "batch_size": 4,
            "progress": False,
            "log_every": 1,
            "ckpt_every": 2,
            "ema_decay": 0.5,
        },
        "log": {"image_every": 2, "n_images": 4},
    }
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


@pytest.mark.parametrize(("kind", "diffusers_cls"), [("vqgan", VQModel), ("kl", AutoencoderKL)])
def test_train_export_and_load_in_diffusers(tmp_path, kind, diffusers_cls):
    preset, run = tiny_preset(tmp_path, kind), tmp_path / "run"
    # DAE with the aux decoder: the weights file holds `aux_decoder.*`, which export leaves out
    assert main(["train", preset, "--out", str(run), "--set", "schedule.mode=dae"]) == 0
    assert (run / "images" / "recon_0000002.png").is_file() and (run / "tb").is_dir()
    out = tmp_path / "exported"
    assert main(["export", str(run), "--format", "diffusers", "--out", str(out)]) == 0

    state, config = load_weights(run / "model.safetensors")
    assert any(k.startswith("aux_decoder.") for k in state)
    ours = Run(run).autoencoder("final").model  # the full decoder, eval mode
    theirs = diffusers_cls.from_pretrained(str(out)).eval()
    ours.eval()
    x = to_float(synthetic_images(4, seed=1).images)
    with torch.no_grad():
        mine = ours(x).sample if kind == "vqgan" else ours(x, sample_posterior=False).sample
        assert torch.equal(theirs(x).sample, mine)
    if kind == "kl":
        factor = config["model"]["scaling_factor"]
        assert factor is not None and factor > 0
        assert Run(run).config().model.scaling_factor == factor  # config.yaml agrees
        assert json.loads((out / "config.json").read_text())["scaling_factor"] == factor
    # EMA weights export too, and differ from the raw ones
    assert main(["export", str(run), "--out", str(tmp_path / "ema"), "--ema"]) == 0
    ema = diffusers_cls.from_pretrained(str(tmp_path / "ema"))
    assert not torch.equal(ema.decoder.conv_out.weight, theirs.decoder.conv_out.weight)
    # an earlier export is replaced only when asked, and then whole (no temporary folder left)
    assert main(["export", str(run), "--out", str(out), "--ema"]) == 1
    assert main(["export", str(run), "--out", str(out), "--ema", "--overwrite"]) == 0
    again = diffusers_cls.from_pretrained(str(out))
    assert torch.equal(again.decoder.conv_out.weight, ema.decoder.conv_out.weight)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # --overwrite replaces the whole folder, so a file of the user's in it makes it refused
    (out / "NOTES.md").write_text("mine")
    assert main(["export", str(run), "--out", str(out), "--overwrite"]) == 1
    assert (out / "NOTES.md").read_text() == "mine" and (out / "config.json").is_file()


def test_implicit_codebook_run_refuses_diffusers_export_in_one_line(tmp_path, capsys):
    """An fsq run keeps dae's format; `dae export` says why in one line and writes nothing."""
    preset, run = tiny_preset(tmp_path, "vqgan"), tmp_path / "run"
    fsq = ["model.quantizer=fsq", "model.fsq_levels=[5,5,3,3]", "model.restart_dead_codes=0"]
    sets = [a for s in [*fsq, "train.steps=1", "log.image_every=0"] for a in ("--set", s)]
    assert main(["train", preset, "--out", str(run), *sets]) == 0
    capsys.readouterr()
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.quantizer: fsq has no codebook matrix" in err
    assert not out.exists()
