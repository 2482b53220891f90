"""The two prior families as trainable modules with one interface, and their typed configs.

`dae.experiments.KINDS` maps a config's `kind:` (`prior_gpt`, `prior_dit`) to its config class and
module. Each prior module has `loss(latents, labels, generator) -> (loss, logs)` and
`sample(labels, generator, device) -> latents` (one per label; an unconditional prior ignores the
labels' values), in the layout of the `LatentCache` it was built for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from dae.config import ConfigError, check
from dae.data.images import ImageDataConfig
from dae.priors.cache import CacheConfig
from dae.priors.diffusion import GaussianDiffusion, classifier_free_guidance, linear_betas
from dae.priors.dit import DiT, DiTConfig
from dae.priors.gpt import GPT, GPTConfig
from dae.priors.sampling import TokenSamplingConfig, generate
from dae.train.optim import OptimConfig
from dae.train.task import TrainConfig


@dataclass
class GPTSampleConfig(TokenSamplingConfig):
    batch_size: int = field(default=64, metadata={"help": "sequences sampled at once"})
    use_ema: bool = field(default=True, metadata={"help": "sample with the EMA weights if kept"})


@dataclass
class DiffusionConfig:
    num_timesteps: int = field(default=1000, metadata={"help": "training diffusion steps"})
    beta_start: float = field(default=1e-4, metadata={"help": "linear schedule's first beta"})
    beta_end: float = field(default=0.02, metadata={"help": "linear schedule's last beta"})
    lambda_vlb: float = field(default=1.0, metadata={"help": "weight of L_vlb in the hybrid loss"})

    def __post_init__(self) -> None:
        check(self.num_timesteps >= 2, "num_timesteps", f"must be >= 2, got {self.num_timesteps}")
        check(
            0 < self.beta_start < self.beta_end < 1,
            "beta_end",
            "need 0 < beta_start < beta_end < 1",
        )
        check(self.lambda_vlb >= 0, "lambda_vlb", f"must be >= 0, got {self.lambda_vlb}")
        # betas are scaled by 1000 / num_timesteps (improved-diffusion), so short chains get large ones
        check(
            self.beta_end * 1000 / self.num_timesteps < 1,
            "num_timesteps",
            f"too few steps: the scaled last beta {self.beta_end * 1000 / self.num_timesteps} >= 1",
        )


@dataclass
class DiTSampleConfig:
    sampler: Literal["ddpm", "ddim"] = field(default="ddpm", metadata={"help": "ddpm or ddim"})
    steps: int = field(default=250, metadata={"help": "respaced sampling steps"})
    eta: float = field(default=0.0, metadata={"help": "DDIM noise (0: deterministic)"})
    cfg_scale: float = field(default=1.0, metadata={"help": "classifier-free guidance; 1: off"})
    guided_channels: int | None = field(
        default=None,
        metadata={"help": "guide only the first N latent channels (DiT used 3); null: all"},
    )
    batch_size: int = field(default=64, metadata={"help": "latents sampled at once"})
    use_ema: bool = field(default=True, metadata={"help": "sample with the EMA weights if kept"})

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.cfg_scale >= 0, "cfg_scale", f"must be >= 0, got {self.cfg_scale}")
        check(self.eta >= 0, "eta", f"must be >= 0, got {self.eta}")


def _adamw() -> OptimConfig:
    return OptimConfig(name="adamw", lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)


def _check_data(data: ImageDataConfig) -> None:
    check(not data.hflip, "data.hflip", "a prior flips once, when caching: use cache.hflip")


@dataclass
class GPTPriorConfig:
    kind: Literal["prior_gpt"] = "prior_gpt"
    ae_run: str | None = field(default=None, metadata={"help": "autoencoder run (set by the CLI)"})
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    model: GPTConfig = field(default_factory=GPTConfig)
    class_conditional: bool = field(default=False, metadata={"help": "class token vs start token"})
    optim: OptimConfig = field(default_factory=_adamw)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: GPTSampleConfig = field(default_factory=GPTSampleConfig)

    def __post_init__(self) -> None:
        _check_data(self.data)


@dataclass
class DiTPriorConfig:
    kind: Literal["prior_dit"] = "prior_dit"
    ae_run: str | None = field(default=None, metadata={"help": "autoencoder run (set by the CLI)"})
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    model: DiTConfig = field(default_factory=DiTConfig)
    class_conditional: bool = field(default=True, metadata={"help": "labels (and CFG) or none"})
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    optim: OptimConfig = field(default_factory=_adamw)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: DiTSampleConfig = field(default_factory=DiTSampleConfig)

    def __post_init__(self) -> None:
        _check_data(self.data)


class Prior(nn.Module):
    """Base of the priors: `forward` is the training loss, so DDP can wrap it."""

    n_classes: int

    def forward(self, latents: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        return self.loss(latents, labels, generator)


class GPTPrior(Prior):
    """GPT over raster-ordered code grids `(B, h, w)`."""

    def __init__(self, cfg: GPTPriorConfig, meta: dict[str, Any]):
        super().__init__()
        if meta["kind"] != "vq":
            raise ConfigError(
                "kind", "prior_gpt needs a VQ autoencoder's codes; use prior_dit for KL"
            )
        self.cfg, self.grid = cfg, tuple(meta["latent_shape"])
        n_classes = len(meta["classes"]) if cfg.class_conditional else 0
        seq_len = self.grid[0] * self.grid[1]
        self.gpt = GPT(cfg.model, meta["codebook_size"], seq_len, n_classes)

    @property
    def n_classes(self) -> int:
        return self.gpt.n_classes

    def param_groups(self, weight_decay: float) -> list[dict]:
        return self.gpt.param_groups(weight_decay)

    def loss(self, codes: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        loss = self.gpt.loss(codes.flatten(1), labels if self.n_classes else None)
        return loss, {"loss": loss.item()}

    def sample(self, labels: torch.Tensor, generator: torch.Generator, device) -> torch.Tensor:
        cond = labels.to(device) if self.n_classes else None
        codes = generate(self.gpt, len(labels), self.cfg.sample, cond, generator, device)
        return codes.view(-1, *self.grid)  # (B, L) -> (B, h, w)


class DiTPrior(Prior):
    """DiT + Gaussian diffusion over scaled KL latents `(B, C, h, w)`."""

    def __init__(self, cfg: DiTPriorConfig, meta: dict[str, Any]):
        super().__init__()
        if meta["kind"] != "kl":
            raise ConfigError(
                "kind", "prior_dit needs a KL autoencoder's latents; use prior_gpt for VQ"
            )
        c, h, w = meta["latent_shape"]
        check(h == w, "data.image_size", f"DiT needs square latents, got {h}x{w}")
        self.cfg, self.shape = cfg, (c, h, w)
        self.n_classes = len(meta["classes"]) if cfg.class_conditional else 0
        self.dit = DiT(cfg.model, h, c, self.n_classes)
        d = cfg.diffusion
        self.diffusion = GaussianDiffusion(linear_betas(d.num_timesteps, d.beta_start, d.beta_end))

    def param_groups(self, weight_decay: float) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": weight_decay}]

    def loss(self, z: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        b = z.shape[0]
        t = torch.randint(self.diffusion.num_timesteps, (b,), generator=generator).to(z.device)
        noise = torch.randn(z.shape, generator=generator).to(z.device)
        p_drop = self.cfg.model.class_dropout if self.n_classes else 1.0
        drop = (torch.rand(b, generator=generator) < p_drop).to(z.device)
        y = labels if self.n_classes else torch.zeros_like(labels)

        def model(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            return self.dit(x, ts, y, drop)

        terms = self.diffusion.training_losses(model, z, t, noise, self.cfg.diffusion.lambda_vlb)
        logs = {k: v.mean().item() for k, v in terms.items()}
        return terms["loss"].mean(), logs

    def sample(self, labels: torch.Tensor, generator: torch.Generator, device) -> torch.Tensor:
        s = self.cfg.sample
        labels = labels.to(device)
        if self.n_classes and s.cfg_scale != 1.0:
            model = classifier_free_guidance(
                self.dit, labels, self.n_classes, s.cfg_scale, self.shape[0], s.guided_channels
            )
        else:
            y = labels if self.n_classes else torch.zeros_like(labels)

            def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return self.dit(x, t, y)

        diffusion = self.diffusion.respace(min(s.steps, self.diffusion.num_timesteps))
        shape = (len(labels), *self.shape)
        if s.sampler == "ddim":
            return diffusion.ddim_sample_loop(model, shape, s.eta, generator, device)
        return diffusion.p_sample_loop(model, shape, generator, device)
