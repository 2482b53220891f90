"""Tiny end-to-end runs: autoencoder run -> latent cache -> prior -> samples, for VQ+GPT and KL+DiT.

The real VQGAN / KL-AE live elsewhere; here two tiny conv stand-ins keep the same contract
(dae/autoencoder/base.py; VQ: `encode_to_indices`, `decode_indices`, `codebook`; gaussian:
`posterior -> (mean, logvar)`, `scaling_factor`) and train through the ordinary `dae train`.
"""

from __future__ import annotations

import os
import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.cli import main
from dae.data.images import ImageDataConfig, load_from_config
from dae.data.sampler import EpochSampler
from dae.data.transforms import to_float
from dae.errors import CheckpointError, NonFiniteLossError
from dae.experiments import KINDS, Kind, load_config
from dae.metrics.evaluate import score_samples
from dae.priors.cache import CacheConfig, LatentCache, from_prior_space, to_prior_space
from dae.priors.generate import read_samples, write_samples
from dae.priors.task import PriorTask
from dae.priors.train import build_cache
from dae.run_folder import RunFolder
from dae.schedule import ScheduleConfig
from dae.train.interrupt import Interrupted
from dae.train.optim import OptimConfig
from dae.train.task import Task, TrainConfig
from dae.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


@dataclass
class FakeAEConfig:
    latent: Literal["vq", "kl"] = "vq"
    n_embed: int = 16
    width: int = 8
    z_channels: int = 3
    scaling_factor: float | None = None


@dataclass
class FakeExperimentConfig:
    kind: Literal["fake_image_ae"] = "fake_image_ae"
    model: FakeAEConfig = field(default_factory=FakeAEConfig)
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _decoder(cfg: FakeAEConfig, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cfg.z_channels, width, 3, padding=1),
        nn.SiLU(),
        nn.Dropout2d(0.0),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(width, 3, 3, padding=1),
    )


class FakeImageAE(DecoupledAutoencoder):
    """(B, 3, 8, 8) -> (B, z, 4, 4): a KL (or, in FakeVQ, VQ) bottleneck -> (B, 3, 8, 8)."""

    kind = "gaussian"

    def __init__(self, cfg: FakeAEConfig):
        super().__init__()
        self.cfg = cfg
        out = cfg.z_channels * (2 if cfg.latent == "kl" else 1)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, cfg.width, 4, 2, 1), nn.SiLU(), nn.Conv2d(cfg.width, out, 1)
        )
        self.codebook_ = nn.Embedding(cfg.n_embed, cfg.z_channels)
        self.decoder = _decoder(cfg, cfg.width)

    def encoder_modules(self):
        return [self.encoder, self.codebook_]

    def decoder_modules(self):
        return [self.decoder]

    def build_decoder(self, width_factor: float) -> nn.Module:
        return _decoder(self.cfg, max(1, round(self.cfg.width * width_factor)))

    @property
    def scaling_factor(self):
        return self.cfg.scaling_factor

    def encode(self, x):
        h = self.encoder(x)
        return tuple(h.chunk(2, dim=1)) if self.cfg.latent == "kl" else h

    posterior = encode

    def latent(self, x):
        return self.encode(x)[0]

    def decode_full(self, z):
        return self.decoder(z)

    def loss(self, x):
        if self.cfg.latent == "kl":
            mean, logvar = self.encode(x)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
            kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).mean()
            loss = (self.decode(z) - x).pow(2).mean() + 1e-3 * kl
        else:
            h = self.encode(x)
            idx = self.nearest(h)
            zq = self.codebook_(idx).permute(0, 3, 1, 2)
            commit = (h - zq.detach()).pow(2).mean() + (zq - h.detach()).pow(2).mean()
            loss = (self.decode(h + (zq - h).detach()) - x).pow(2).mean() + commit
        return loss, {"loss": loss.item()}

    def nearest(self, h):
        flat = h.permute(0, 2, 3, 1)  # (B, z, h, w) -> (B, h, w, z)
        return (
            torch.cdist(flat.reshape(-1, flat.shape[-1]), self.codebook_.weight)
            .argmin(1)
            .view(flat.shape[:3])
        )


class FakeVQ(FakeImageAE):
    """The VQ stand-in: the KL one plus the code-grid interface."""

    kind = "vq"

    @property
    def codebook(self):
        return self.codebook_.weight

    def latent(self, x):
        return self.codebook_(self.encode_to_indices(x)).permute(0, 3, 1, 2)

    def encode_to_indices(self, x):
        return self.nearest(self.encode(x))  # (B, h, w)

    def decode_indices(self, idx):
        return self.decode(self.codebook_(idx).permute(0, 3, 1, 2))


class FakeTask(Task):
    def __init__(self, cfg: FakeExperimentConfig):
        torch.manual_seed(cfg.train.seed)
        self.model = (FakeVQ if cfg.model.latent == "vq" else FakeImageAE)(cfg.model)
        self.images = load_from_config(cfg.data).images
        self.sampler = EpochSampler(len(self.images), cfg.train.batch_size, cfg.train.seed)

    def batch(self, step):
        return to_float(self.images[self.sampler.indices(step)])

    def loss(self, name, batch, ctx):
        return self.model.loss(batch)


@pytest.fixture(autouse=True)
def fake_kind(monkeypatch):
    """The stand-in autoencoders as an experiment kind, for this module's tests only."""
    monkeypatch.setitem(KINDS, "fake_image_ae", Kind(FakeExperimentConfig, "autoencoder", FakeTask))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """16 8x8 RGB images in two classes: red left half vs blue top half, with noise."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(16):
        label = i % 2
        img = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
        if label == 0:
            img[:, :4, 0] = 220
        else:
            img[:4, :, 2] = 220
        folder = root / "train" / f"c{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    return root


def write_ae_config(path: Path, images: Path, latent: str, mode: str) -> Path:
    cfg = {
        "kind": "fake_image_ae",
        "model": {"latent": latent},
        "data": {"name": "folder", "root": str(images), "cache": False},
        "schedule": {"mode": mode},
        "optim": {"lr": 0.01},
        "train": {
            "steps": 6,
            "batch_size": 8,
            "ckpt_every": 3,
            "progress": False,
            "tensorboard": False,
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


TINY = {
    "prior_gpt": ["model.n_layer=1", "model.n_head=2", "model.n_embd=16"],
    "prior_dit": [
        "model.depth=1",
        "model.hidden_size=16",
        "model.num_heads=2",
        "sample.steps=3",
        "diffusion.num_timesteps=50",
    ],
}
FAST = [
    "train.steps=4",
    "train.batch_size=8",
    "train.log_every=2",
    "train.ckpt_every=2",
    "train.progress=false",
    "train.tensorboard=false",
    "train.ema_decay=0.9",
    "sample.batch_size=4",
]


@pytest.mark.parametrize(
    "latent,preset", [("vq", "prior_gpt_cifar10"), ("kl", "prior_dit_cifar10")]
)
def test_train_prior_sample_end_to_end(tmp_path, image_folder, latent, preset):
    ae_cfg = write_ae_config(tmp_path / "ae.yaml", image_folder, latent, "dae")
    assert main(["train", str(ae_cfg), "--out", str(tmp_path / "ae")]) == 0
    kind = "prior_gpt" if latent == "vq" else "prior_dit"
    data = [
        f"data.root={image_folder}",
        "data.name=folder",
        "data.cache=false",
        "data.image_size=null",
    ]
    args = [
        "train-prior",
        str(tmp_path / "ae"),
        str(REPO / "configs" / f"{preset}.yaml"),
        "--out",
        str(tmp_path / "prior"),
    ]
    for item in TINY[kind] + FAST + data:
        args += ["--set", item]
    assert main(args) == 0
    cache = LatentCache.load(tmp_path / "prior" / "latents.safetensors")
    assert cache.meta["ae_source"] == "final" and len(cache) == 16
    if latent == "vq":
        assert cache.tensors["codes"].shape == (16, 4, 4) and cache.meta["codebook_size"] == 16
    else:
        assert cache.tensors["mean"].shape == (16, 3, 4, 4) and cache.meta["scaling_factor"] > 0
        # the preset centres the latents: the prior sees zero-mean channels (posterior means)
        z, _ = cache.batch(torch.arange(16), None, sample=False)
        assert len(cache.meta["shift"]) == 3 and cache.meta["shift"] != [0.0] * 3
        torch.testing.assert_close(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
        # and decoding adds the shift back: prior space -> decoder latents inverts the cache's map
        raw = cache.tensors["mean"][:4]
        torch.testing.assert_close(
            from_prior_space(to_prior_space(raw, cache.meta), cache.meta), raw
        )
        torch.testing.assert_close(z[:4], to_prior_space(raw, cache.meta))
    assert (tmp_path / "prior" / "model_ema.safetensors").is_file()
    assert main(["sample", str(tmp_path / "prior"), "--n", "6", "--out", str(tmp_path / "s")]) == 0
    images, labels = read_samples(tmp_path / "s" / "samples.npz")
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 8, 8)
    # The GPT preset is unconditional (no labels), the DiT preset class-conditional.
    assert labels.tolist() == ([-1] * 6 if latent == "vq" else [0, 1, 0, 1, 0, 1])
    assert images.float().std() > 0 and (tmp_path / "s" / "grid.png").stat().st_size > 0
    # Same seed, same samples.
    assert main(["sample", str(tmp_path / "prior"), "--n", "6", "--out", str(tmp_path / "s2")]) == 0
    assert torch.equal(read_samples(tmp_path / "s2" / "samples.npz")[0], images)
    # Earlier samples are replaced only when asked.
    again = ["sample", str(tmp_path / "prior"), "--n", "2", "--seed", "1", "--out"]
    assert main([*again, str(tmp_path / "s")]) == 1
    assert torch.equal(read_samples(tmp_path / "s" / "samples.npz")[0], images)
    (tmp_path / "s" / "scores.json").write_text('{"fd": 1.0}')  # as `--score` leaves it
    assert main([*again, str(tmp_path / "s"), "--overwrite"]) == 0
    assert read_samples(tmp_path / "s" / "samples.npz")[0].shape == (2, 3, 8, 8)
    assert not (tmp_path / "s" / "scores.json").exists()  # it scored the replaced samples
    if latent == "kl":  # guided DDIM sampling through the same command
        guided = ["--set", "sample.cfg_scale=3.0", "--set", "sample.sampler=ddim"]
        assert (
            main(
                [
                    "sample",
                    str(tmp_path / "prior"),
                    "--n",
                    "2",
                    "--out",
                    str(tmp_path / "g"),
                    *guided,
                ]
            )
            == 0
        )
        assert read_samples(tmp_path / "g" / "samples.npz")[0].shape == (2, 3, 8, 8)


def test_dae_prior_can_cache_from_the_stage2_checkpoint(tmp_path, image_folder):
    data = ImageDataConfig(name="folder", root=str(image_folder), cache=False)
    for mode in ("dae", "baseline"):
        cfg = write_ae_config(tmp_path / f"{mode}.yaml", image_folder, "vq", mode)
        assert main(["train", str(cfg), "--out", str(tmp_path / mode)]) == 0
    final = build_cache(tmp_path / "dae", data, CacheConfig(ae_weights="final"))
    (tmp_path / "dae" / "model.safetensors").unlink()  # as if stage 2 were still running
    early = build_cache(tmp_path / "dae", data, CacheConfig(ae_weights="auto"))
    assert early.meta["ae_source"] == "checkpoint@6/stage2"
    assert torch.equal(early.tensors["codes"], final.tensors["codes"])
    (tmp_path / "baseline" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="encoder is still training"):
        build_cache(tmp_path / "baseline", data, CacheConfig())


def kl_cache() -> LatentCache:
    """8 random KL latents (2, 4, 4) in two classes."""
    gen = torch.Generator().manual_seed(0)
    meta = {"kind": "kl", "latent_shape": [2, 4, 4], "classes": ["a", "b"], "scaling_factor": 0.5}
    tensors = {
        "mean": torch.randn(8, 2, 4, 4, generator=gen),
        "logvar": torch.full((8, 2, 4, 4), -2.0),
        "labels": torch.arange(8) % 2,
    }
    return LatentCache(tensors, meta)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_prior_trainer_honours_precision(precision, dtype):
    cache = kl_cache()
    overrides = TINY["prior_dit"] + FAST + [f"train.precision={precision}", "train.steps=2"]
    kind, cfg = load_config(REPO / "configs" / "prior_dit_cifar10.yaml", overrides)
    prior = kind.model(cfg, cache.meta)
    seen = set()
    first = next(m for m in prior.modules() if isinstance(m, nn.Linear))
    first.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPUs without native bf16 warn that it is emulated
        Trainer(PriorTask(cfg, cache, prior), None, cfg.train, cfg.optim).fit()
    assert seen == {dtype}  # the linear layers ran under autocast ...
    assert {p.dtype for p in prior.parameters()} == {torch.float32}  # ... on fp32 weights


def test_prior_trainer_nan_policy():
    cache = kl_cache()
    cache.tensors["mean"][:] = float("nan")  # every latent, so every step's loss
    overrides = TINY["prior_dit"] + FAST + ["train.steps=2"]
    kind, cfg = load_config(REPO / "configs" / "prior_dit_cifar10.yaml", overrides)
    prior = kind.model(cfg, cache.meta)
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite 'prior' loss in step 1 \(train\); stopped"
    ):
        Trainer(PriorTask(cfg, cache, prior), None, cfg.train, cfg.optim).fit()
    cfg.train.on_nan = "skip"
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    rows = Trainer(PriorTask(cfg, cache, prior), None, cfg.train, cfg.optim).fit()
    assert rows[-1]["skipped_nonfinite"] == 1.0
    assert all(torch.equal(v, prior.state_dict()[k]) for k, v in before.items())


def test_prior_training_resumes_exactly(tmp_path):
    cache = kl_cache()
    meta = cache.meta
    kind, cfg = load_config(REPO / "configs" / "prior_dit_cifar10.yaml", TINY["prior_dit"] + FAST)

    def run(out: Path, steps: int, resume: bool) -> dict:
        torch.manual_seed(0)
        task = PriorTask(cfg, cache, kind.model(cfg, meta))
        train = TrainConfig(**{**vars(cfg.train), "steps": steps})
        trainer = Trainer(task, None, train, cfg.optim, out, {}, resume)
        trainer.fit()
        return task.model.state_dict() | {f"ema.{k}": v for k, v in trainer.ema.shadow.items()}

    whole = run(tmp_path / "a", 4, False)
    run(tmp_path / "b", 2, False)
    resumed = run(tmp_path / "b", 4, True)
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key


@pytest.mark.parametrize("preset", sorted(p.stem for p in (REPO / "configs").glob("prior_*.yaml")))
def test_every_prior_preset_builds_and_steps(preset):
    kind, cfg = load_config(REPO / "configs" / f"{preset}.yaml")
    assert kind is KINDS[cfg.kind] and kind.family == "prior"
    paper_scale = "cifar10" not in preset
    if cfg.kind == "prior_gpt":
        meta = {
            "kind": "vq",
            "latent_shape": [16, 16] if paper_scale else [8, 8],
            "classes": [],
            "codebook_size": 1024 if paper_scale else 512,
        }
        batch = torch.randint(meta["codebook_size"], (2, *meta["latent_shape"]))
    else:
        meta = {
            "kind": "kl",
            "latent_shape": [4, 32, 32] if paper_scale else [4, 8, 8],
            "classes": [str(i) for i in range(1000 if paper_scale else 10)],
            "scaling_factor": 1.0,
        }
        batch = torch.randn(2, *meta["latent_shape"])
    labels = torch.tensor([0, 1])
    gen = torch.Generator().manual_seed(0)
    if paper_scale:
        # Hundreds of millions of parameters: build and run forward + backward on the meta device.
        with torch.device("meta"):
            prior = kind.model(cfg, meta)
        n_params = sum(p.numel() for p in prior.parameters())
        assert n_params > 3e8
        if cfg.kind == "prior_gpt":
            logits, _ = prior.gpt(torch.zeros(2, 256, dtype=torch.long, device="meta"))
            logits.sum().backward()
            assert logits.shape == (2, 256, 1024)
        else:
            out = prior.dit(
                torch.zeros(2, 4, 32, 32, device="meta"),
                torch.zeros(2, dtype=torch.long, device="meta"),
                torch.zeros(2, dtype=torch.long, device="meta"),
            )
            out.sum().backward()
            assert out.shape == (2, 8, 32, 32)
        return
    torch.manual_seed(0)
    prior = kind.model(cfg, meta)
    loss, logs = prior.loss(batch, labels, gen)
    loss.backward()
    assert torch.isfinite(loss) and "loss" in logs


def test_score_samples_against_a_split(tmp_path, image_folder):
    data = ImageDataConfig(name="folder", root=str(image_folder), cache=False)
    real = load_from_config(data)
    noise = torch.randint(
        0, 256, real.images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    write_samples(tmp_path / "same", real.images, real.labels, {})
    write_samples(tmp_path / "noise", noise, real.labels, {})
    same = score_samples(tmp_path / "same" / "samples.npz", data, "pixels")[0]
    other = score_samples(tmp_path / "noise" / "samples.npz", data, "pixels")[0]
    fd = next(k for k in same if k.lower().startswith(("fd", "fid")))
    assert same[fd] < 1e-6 < other[fd]


def test_compare_priors_one_command(tmp_path, image_folder):
    for mode in ("baseline", "dae"):
        cfg = write_ae_config(tmp_path / f"{mode}.yaml", image_folder, "vq", mode)
        assert main(["train", str(cfg), "--out", str(tmp_path / mode)]) == 0
    args = [
        "compare-priors",
        str(tmp_path / "baseline"),
        str(tmp_path / "dae"),
        str(REPO / "configs" / "prior_gpt_cifar10.yaml"),
        "--out",
        str(tmp_path / "cmp"),
        "--n",
        "4",
        "--score",
        "none",
    ]
    data = [f"data.root={image_folder}", "data.name=folder", "data.cache=false"]
    for item in TINY["prior_gpt"] + FAST + data:
        args += ["--set", item]
    assert main(args) == 0
    rows = yaml.safe_load((tmp_path / "cmp" / "results.json").read_text())
    assert [r["run"] for r in rows] == ["baseline", "dae"]
    assert all(r["train_loss"] > 0 for r in rows)
    assert read_samples(tmp_path / "cmp" / "dae" / "samples" / "samples.npz")[0].shape == (
        4,
        3,
        8,
        8,
    )


def test_prior_ctrl_c_saves_at_a_step_boundary_and_resumes_exactly(tmp_path):
    """Priors train in the one Trainer, so a Ctrl-C in the middle of a step lets that step
    finish, saves there and stops; `--resume` from it ends equal to an uninterrupted run."""
    cache = kl_cache()
    overrides = TINY["prior_dit"] + FAST + ["train.ckpt_every=0"]  # only Ctrl-C saves midway
    kind, cfg = load_config(REPO / "configs" / "prior_dit_cifar10.yaml", overrides)

    def run(out: Path, resume: bool, interrupt_in_step: int | None = None) -> dict:
        torch.manual_seed(0)
        task = PriorTask(cfg, cache, kind.model(cfg, cache.meta))
        loss = task.loss

        def loss_with_ctrl_c(name, batch, ctx):
            if ctx.stage_step + 1 == interrupt_in_step:  # mid-step: before its backward
                os.kill(os.getpid(), signal.SIGINT)
            return loss(name, batch, ctx)

        task.loss = loss_with_ctrl_c
        Trainer(task, None, cfg.train, cfg.optim, out, {}, resume).fit()
        return task.model.state_dict()

    whole = run(tmp_path / "a", False)
    with pytest.raises(Interrupted, match="stopped after step 3"):
        run(tmp_path / "b", False, interrupt_in_step=3)
    assert RunFolder(tmp_path / "b").checkpoint()["step"] == 3
    resumed = run(tmp_path / "b", True)
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key
