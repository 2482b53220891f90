"""scripts/latent_spectrum.py and scripts/latent_push.py on a tiny MNIST VQ run trained the DAE
way (Dropout2d weak decoder): the spectrum agrees with what training logged on the same test
subset, a kept checkpoint reads as the run it came from, and the forces on the latent are the
gradients they name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dae.cli import main
from dae.data.images import float_batch
from dae.metrics.diagnostics import principal_directions, variance_growth
from dae.run import Run
from dae.train.image_task import held_out_images


def train_tiny(out: Path, data_root: Path, weak: str = "dropout2d", flags=()) -> list[dict]:
    """4 steps of a DAE MNIST VQGAN (stage 1, steps 1-2, with channel dropout 0.5, or `weak`),
    `flags` passed on (--until, --resume); its metrics rows."""
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
        f"schedule.weak_decoder={weak}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    assert main(["train", "configs/mnist_vqgan.yaml", "--out", str(out), *args, *flags]) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_spectrum_of_a_run_and_of_its_kept_checkpoint(tmp_path, data_root, capsys, load_script):
    run = tmp_path / "run"
    rows = train_tiny(run, data_root)
    kept = tmp_path / "kept.pt"
    shutil.copy(run / "checkpoints" / "last.pt", kept)
    capsys.readouterr()
    script, png = load_script("latent_spectrum"), tmp_path / "spectrum.png"
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


def test_forces_on_the_latent_are_the_gradients_of_the_loss_terms(
    tmp_path, data_root, capsys, load_script
):
    run = tmp_path / "run"
    train_tiny(run, data_root)
    script = load_script("latent_push")
    loaded = Run(run).autoencoder("auto")
    model, cfg = loaded.model, loaded.cfg
    x = float_batch(held_out_images(cfg.data, 24), torch.arange(24))
    before = model.decode(model.latent(x)).detach()
    torch.manual_seed(0)
    f = script.forces(model, x, cfg, masks=2, dropout=0.5)
    # the model is left as found: full decoder, no dropout, eval mode
    assert torch.equal(model.decode(model.latent(x)).detach(), before)
    # independently: z_q straight through (forward the code, backward the identity), per image
    z = model.encode(x).detach().requires_grad_()
    q = model.quantize.lookup(model.quantize.nearest(z))
    rec = (model.decode(z + (q - z).detach()) - x).abs().mean() * len(x)
    (expected,) = torch.autograd.grad(rec, z)
    assert torch.allclose(f["rec_full"], expected, rtol=1e-4, atol=1e-6)
    # the commitment term codebook_weight * beta * mean |z - q|^2, summed over images
    per_image = z[0].numel()
    pull = cfg.loss.codebook_weight * cfg.model.beta * 2 * (z - q).detach() / per_image
    assert torch.allclose(f["commitment"], pull, rtol=1e-4, atol=1e-8)
    assert not torch.allclose(f["rec_dropout"], f["rec_full"])  # the masks act
    torch.manual_seed(0)
    again = script.forces(model, x, cfg, masks=2, dropout=0.5)
    assert torch.equal(again["rec_dropout"], f["rec_dropout"])  # seeded masks: deterministic
    # the masks' scatter off the plane, against a known one: draws g +- e around g = the full
    # decoder's gradient, e off the plane (channel 0 dropped by the projection): |e| / |g|
    g, e = torch.randn(2, 3, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    off = torch.eye(4, dtype=torch.float64)[:, 1:]
    g[:, 0], e[:, 0] = 0.0, 7.0
    known = {"rec_masks": torch.stack([g + e, g - e]), "rec_dropout": g, "rec_full": g}
    ratio = (e[:, 1:].pow(2).sum() / g.pow(2).sum()).sqrt()
    assert script.off_plane_noise(known, off) == pytest.approx(float(ratio), rel=1e-6)
    # the script's rows: those forces along z's principal directions, on its own test subset
    capsys.readouterr()
    assert script.main([str(run), "-n", "24", "--masks", "2", "--directions", "3"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["step"] == 4
    _, directions = principal_directions(f["z"])
    rates = variance_growth(f["z"], f["commitment"], directions[:, :3])
    assert row["commitment"] == pytest.approx(rates.tolist(), rel=1e-3)
    assert set(row) >= {"rec_full", "rec_dropout", "z_fractions", "rec_full_off_plane"}
    assert row["dropout_noise_off_plane"] > 0  # two masks scatter
    off = variance_growth(f["z"], f["commitment"], directions[:, 2:], pooled=True)
    assert row["commitment_off_plane"] == pytest.approx(float(off), rel=1e-3)
    rows, png = tmp_path / "push.jsonl", tmp_path / "push.png"
    rows.write_text(json.dumps(row) + "\n" + json.dumps({**row, "step": 8}) + "\n")
    assert script.main(["--from-jsonl", str(rows), "--plot", str(png)]) == 0
    assert png.stat().st_size > 5_000


def test_an_aux_run_is_read_through_its_half_width_decoder_in_stage_1(
    tmp_path, data_root, capsys, load_script
):
    """In stage 1 an aux run trains its half-width decoder while the full one sits at its
    initialisation: the push is the aux decoder's gradient, and the codes' share off the plane
    is their variance along z's own off-plane directions."""
    run = tmp_path / "run"
    train_tiny(run, data_root, weak="aux", flags=["--until", "2"])  # the end of stage 1, kept
    kept = tmp_path / "step2.pt"
    shutil.copy(run / "checkpoints" / "last.pt", kept)
    train_tiny(run, data_root, weak="aux", flags=["--resume"])
    script = load_script("latent_push")
    capsys.readouterr()
    assert script.main([f"{run}={kept}", str(run), "-n", "24", "--masks", "0"]) == 0
    first, final = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    # the checkpoint at the boundary: its next step is stage 2's, its weights stage 1's
    assert first["stage"] == "stage2" and first["step"] == 2
    assert first["decoder"] == "aux (0.5 width)"
    assert final["step"] == 4 and final["decoder"] == "full"
    assert "rec_dropout" not in first  # no channel dropout in an aux run
    loaded = Run(run).autoencoder("checkpoint", checkpoint=kept)
    model, cfg = loaded.model, loaded.cfg
    x = float_batch(held_out_images(cfg.data, 24), torch.arange(24))
    z = model.encode(x).detach().requires_grad_()
    q = model.quantize.lookup(model.quantize.nearest(z)).detach()
    _, directions = principal_directions(z)

    def push(decoder) -> float:  # off the plane, through the straight-through estimator
        rec = (decoder(z + (q - z).detach()) - x).abs().mean() * len(x)
        (grad,) = torch.autograd.grad(rec, z)
        return float(variance_growth(z, grad, directions[:, 2:], pooled=True))

    assert first["rec_full_off_plane"] == pytest.approx(push(model.aux_decoder), rel=1e-3)
    # the full decoder, untrained in stage 1, pushes otherwise
    assert first["rec_full_off_plane"] != pytest.approx(push(model.decode_full), rel=1e-3)

    def rows(t: torch.Tensor) -> torch.Tensor:  # centred (positions, channels)
        t = t.detach().double()
        return (t - t.mean((0, 2, 3), keepdim=True)).movedim(1, -1).reshape(-1, t.shape[1])

    q_off = (rows(q) @ directions[:, 2:]).pow(2).sum(1).mean() / rows(z).pow(2).sum(1).mean()
    assert first["q_off_plane"] == pytest.approx(float(q_off), rel=1e-3)
