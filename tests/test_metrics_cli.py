"""`dae train --lipschitz-every`, `dae evaluate` and `dae report` end to end on a tiny toy run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.cli import main
from dae.config import to_dict
from dae.data.images import ImageDataConfig, load_from_config
from dae.experiments import KINDS, Kind
from dae.metrics.codebook import codebook_report
from dae.metrics.reconstruction import reconstruct
from dae.metrics.report import write_report
from dae.run_folder import RunFolder
from dae.schedule import ScheduleConfig
from dae.train.checkpoint import save_weights
from dae.train.task import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "train.steps=40",
    "--set",
    "train.log_every=10",
    "--set",
    "train.progress=false",
    "--set",
    "train.tensorboard=false",
    "--set",
    "data.n_train=512",
    "--set",
    "data.n_test=256",
]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "toy_dae"
    args = [
        "train",
        str(REPO / "configs" / "toy_vae.yaml"),
        *TINY,
        "--set",
        "schedule.mode=dae",
        "--out",
        str(run),
        "--lipschitz-every",
        "10",
    ]
    assert main(args) == 0
    return run


def test_lipschitz_logged_and_encoder_frozen_in_stage2(toy_run):
    rows = RunFolder(toy_run).read_metrics()
    lip = [(r["stage"], r["lipschitz/encoder"], r["lipschitz/decoder"]) for r in rows]
    assert [s for s, _, _ in lip] == ["stage1", "stage1", "stage2", "stage2"]
    # Stage 2 freezes the encoder: its complexity must not move, while the decoder's does.
    assert lip[2][1] == lip[3][1] and lip[2][2] != lip[3][2]
    assert lip[0][1] != lip[1][1]


def test_evaluate_and_report(toy_run, tmp_path):
    assert main(["evaluate", str(toy_run), "--knn-train", "512"]) == 0
    result = json.loads((toy_run / "eval.json").read_text())
    m = result["metrics"]
    assert result["features"] == "pixels" and "recon_FD-pixels" in m and "FID" not in json.dumps(m)
    assert 0.0 <= m["knn_latent_acc"] <= 1.0 and m["knn_data_acc"] > 0.5
    assert m["recon_FD-pixels"] > 0 and m["lipschitz/encoder"] > 0
    assert set(result["skipped"]) == {"psnr/ssim", "codebook", "spectrum/equivariance"}
    assert 0.0 <= m["linear_probe_acc"] <= 1.0 and m["gmm_modes"] >= 1
    # The same evaluation twice gives the same numbers (deterministic latents and pairs).
    assert main(["evaluate", str(toy_run), "--knn-train", "512", "--metrics", "knn,lipschitz"]) == 0
    again = json.loads((toy_run / "eval.json").read_text())["metrics"]
    assert (
        again["knn_latent_acc"] == m["knn_latent_acc"]
        and again["lipschitz/decoder"] == m["lipschitz/decoder"]
    )
    assert main(["evaluate", str(toy_run), "--metrics", "bogus"]) == 2

    out = tmp_path / "report"
    assert main(["report", str(toy_run), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "| metric | toy_dae |" in md and "| knn_latent_acc |" in md
    for png in ("loss_curves.png", "lipschitz.png"):
        assert (out / png).stat().st_size > 10_000 and f"]({png})" in md


class TinyVQ(DecoupledAutoencoder):
    """The VQ contract: kind "vq", encode_to_indices, codebook, latent = code vectors, decode."""

    kind = "vq"

    def __init__(self):
        super().__init__()
        self.enc = nn.Conv2d(1, 2, 2, stride=2)
        self.embedding = nn.Embedding(4, 2)
        self.dec = nn.ConvTranspose2d(2, 1, 2, stride=2)

    def encoder_modules(self):
        return [self.enc, self.embedding]

    def decoder_modules(self):
        return [self.dec]

    @property
    def codebook(self):
        return self.embedding.weight

    def encode(self, x):
        return self.enc(x)

    def encode_to_indices(self, x):
        z = self.encode(x).permute(0, 2, 3, 1)  # (B, D, h, w) -> (B, h, w, D)
        return torch.cdist(z.flatten(0, 2), self.codebook).argmin(1).view(z.shape[:3])

    def latent(self, x):
        return self.embedding(self.encode_to_indices(x)).permute(0, 3, 1, 2)

    def decode_full(self, z):
        return self.dec(z)


def test_vq_protocol_and_codebook_plot(tmp_path):
    torch.manual_seed(0)
    model = TinyVQ()
    x = torch.randn(3, 1, 4, 4)
    idx = model.encode_to_indices(x)
    assert torch.equal(reconstruct(model, x), model.decode(model.latent(x)))
    run = tmp_path / "vq"
    run.mkdir()
    book = codebook_report(model.codebook.detach(), idx)
    (run / "eval.json").write_text(
        json.dumps({"metrics": {"mse": 1.0}, "skipped": {}, "n": 3, "data": "x", "codebook": book})
    )
    md = write_report([run], tmp_path / "out").read_text()
    assert "codebook.png" in md and (tmp_path / "out" / "codebook.png").stat().st_size > 10_000


@dataclass
class ImageVQConfig:
    kind: str = "test_image_vq"
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class ImageVQTask:
    def __init__(self, cfg: ImageVQConfig):
        torch.manual_seed(0)
        self.model, self.data = TinyVQ(), load_from_config(cfg.data)


def test_evaluate_image_vq_run(tmp_path, monkeypatch):
    """A hand-made run of a registered tiny image VQ kind: image metrics, codebook, grid, report."""
    monkeypatch.setenv("DAE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(6):
                level = 40 if c == "a" else 200  # two well separated classes
                arr = np.clip(level + rng.normal(0, 20, (8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / "imgs" / split / c / f"{i}.png")

    monkeypatch.setitem(KINDS, "test_image_vq", Kind(ImageVQConfig, "autoencoder", ImageVQTask))
    cfg = ImageVQConfig(data=ImageDataConfig(name="folder", root=str(tmp_path / "imgs")))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    save_weights(run / "model.safetensors", ImageVQTask(cfg).model, to_dict(cfg))

    samples = tmp_path / "samples.npz"
    np.savez(samples, images=np.full((12, 1, 8, 8), 40, np.uint8))  # a "generator" stuck on class a
    assert main(["evaluate", str(run), "--knn-train", "12", "--samples", str(samples)]) == 0
    result = json.loads((run / "eval.json").read_text())
    m = result["metrics"]
    assert result["skipped"] == {} and result["n"] == 12
    assert m["knn_data_acc"] == 1.0 and 0 < m["ssim"] <= 1 and m["psnr"] > 0
    assert "lipschitz/decoder" in m and m["codebook_dead"] + 1 <= 4
    # the latent diagnostics: two well separated classes are linearly separable
    assert m["linear_probe_acc"] >= 0.9 and 0 <= m["latent_hf_fraction"] <= 1
    assert {"equivariance_encoder_scale", "equivariance_decoder_rot90"} <= set(m)
    channels = result["diagnostics"]["channel_spectrum"]  # fractions, largest first
    assert len(channels) == 2 and sum(channels) == pytest.approx(1.0)  # TinyVQ: 2 channels
    assert channels == sorted(channels, reverse=True) and 1 <= m["latent_pca_dims"] <= len(channels)
    assert (run / "eval_recon.png").is_file()
    # Mode-collapsed samples: inside the real manifold (precision 1) but covering half of it.
    assert m["sample_precision"] == 1.0 and m["sample_recall"] <= 0.5 and m["sample_FD-pixels"] > 0
    md = write_report([run], tmp_path / "out").read_text()
    assert "codebook.png" in md and "diagnostics.png" in md and "Reconstructions" in md
