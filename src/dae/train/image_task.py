"""Image autoencoder training (experiment kinds `vqgan` and `kl`): data, losses, GAN, image grids.

One step, per the trainer's optimiser order:
  "ae":   x -> model -> x_hat; reconstruction + bottleneck term (+ adaptive-weight GAN term once the
          stage has run `disc.start` steps); x_hat is kept for the discriminator.
  "disc": hinge/vanilla loss on D(x) vs D(x_hat) (skipped before `disc.start`).
The DAE schedule decides which decoder is active and what trains; the GAN clock is the stage step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dae.autoencoder.image import ImageAutoencoder
from dae.autoencoder.kl import KLAutoencoder, KLAutoencoderConfig
from dae.autoencoder.pretrained import check_init_for_schedule, load_pretrained
from dae.autoencoder.vqgan import VQGAN, VQGANConfig
from dae.config import ConfigError, check
from dae.data.images import ImageDataConfig, LabelledImages, float_batch, load_from_config, to_uint8
from dae.data.sampler import EpochSampler
from dae.data.stream import LogSkippedImages, SkippedImages, StreamImages, stream_loader
from dae.data.transforms import to_float
from dae.experiments import EXPERIMENTS, ExperimentKind
from dae.losses.discriminator import DiscriminatorConfig, PatchDiscriminator
from dae.losses.gan import adaptive_weight, discriminator_loss, generator_loss
from dae.losses.kl import KLLossConfig, KLObjective
from dae.losses.reconstruction import Reconstruction
from dae.losses.vq import VQLossConfig
from dae.schedule import ScheduleConfig, StagePlan
from dae.train.distributed import dist_info, resolve_device, wrap_ddp
from dae.train.trainer import OptimConfig, StepContext, Task, TrainConfig


@dataclass
class ImageLogConfig:
    image_every: int = field(default=500, metadata={"help": "steps between reconstruction grids"})
    n_images: int = field(default=8, metadata={"help": "images in a reconstruction grid"})

    def __post_init__(self) -> None:
        check(self.image_every >= 0, "image_every", "must be >= 0 (0 disables)")
        check(self.n_images >= 1, "n_images", "must be >= 1")


@dataclass
class VQGANExperimentConfig:
    kind: Literal["vqgan"] = "vqgan"
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: VQGANConfig = field(default_factory=VQGANConfig)
    loss: VQLossConfig = field(default_factory=VQLossConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=4.5e-6, betas=(0.5, 0.9)))
    train: TrainConfig = field(default_factory=TrainConfig)
    log: ImageLogConfig = field(default_factory=ImageLogConfig)

    def __post_init__(self) -> None:
        check_init_for_schedule(self.model.init_from, self.schedule.mode)


@dataclass
class KLExperimentConfig:
    kind: Literal["kl"] = "kl"
    data: ImageDataConfig = field(default_factory=ImageDataConfig)
    model: KLAutoencoderConfig = field(default_factory=KLAutoencoderConfig)
    loss: KLLossConfig = field(default_factory=KLLossConfig)
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(weight=0.5))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=4.5e-6, betas=(0.5, 0.9)))
    train: TrainConfig = field(default_factory=TrainConfig)
    log: ImageLogConfig = field(default_factory=ImageLogConfig)

    def __post_init__(self) -> None:
        check_init_for_schedule(self.model.init_from, self.schedule.mode)


class ImageTask(Task):
    """Shared VQGAN / KL-AE training: data, discriminator, GAN terms, grids. Subclasses add the
    bottleneck term in `autoencoder_loss`."""

    model: ImageAutoencoder

    def __init__(
        self, cfg: Any, model: ImageAutoencoder, data: LabelledImages | StreamImages | None = None
    ):
        self.cfg = cfg
        self.device = resolve_device(cfg.train.device)
        self.data = data if data is not None else load_from_config(cfg.data)
        _check_images(self.data, cfg.model)
        info = dist_info()
        self.sampler = EpochSampler(
            len(self.data), cfg.train.batch_size, cfg.train.seed, info.rank, info.world_size
        )
        self.stream = stream_loader(self.data, self.sampler, cfg.data, cfg.train, self.device)
        self.skipped = SkippedImages()
        if cfg.model.init_from:
            load_pretrained(model, cfg.model.init_from)
        self.model = model.to(self.device)
        self.disc = PatchDiscriminator(cfg.model.in_channels, cfg.disc.ndf, cfg.disc.n_layers)
        self.disc.to(self.device)
        self.reconstruction = Reconstruction(cfg.loss).to(self.device)
        # Weights are identical on every rank (same seed); training noise (dropout masks,
        # posterior samples) should not be, so each rank continues from its own seed.
        torch.manual_seed(cfg.train.seed + 1_000_003 * (info.rank + 1))
        self.ae: nn.Module = self.model  # what a training step calls: DDP-wrapped under torchrun
        self.disc_train: nn.Module = self.disc
        self._fakes: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    # -- the trainer's interface ------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        if self.stream is not None and self.cfg.data.on_bad_image == "skip":
            return {"model": self.model, "disc": self.disc, "skipped_images": self.skipped}
        return {"model": self.model, "disc": self.disc}

    def extra_ae_parameters(self) -> list[nn.Parameter]:
        """Loss parameters trained with the autoencoder (KL: the learned log-variance)."""
        return []

    def optimizer_params(self, plan: StagePlan) -> dict[str, list[nn.Parameter]]:
        return {
            "ae": plan.parameters() + self.extra_ae_parameters(),
            "disc": list(self.disc.parameters()),
        }

    def start_stage(self, plan: StagePlan) -> None:
        if plan.reset_discriminator:
            self.disc.reset_parameters()

    def enter_stage(self, plan: StagePlan) -> None:
        self.ae = wrap_ddp(self.model)
        self.disc_train = wrap_ddp(self.disc)

    def batch(self, step: int) -> torch.Tensor:
        self._fakes.clear()
        if self.stream is not None:
            x = to_float(self.stream.batch(step))
        else:
            index = self.sampler.indices(step)
            x = float_batch(self.data, index, self.cfg.data.hflip, seed=self.cfg.train.seed + step)
        return x.to(self.device, non_blocking=True)

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        gan_on = ctx.stage_step >= self.cfg.disc.start
        if name == "ae":
            return self._ae_loss(batch, gan_on)
        return self._disc_loss(batch) if gan_on else (None, {})

    def hooks(self) -> list[Any]:
        hooks: list[Any] = [ReconstructionGrid(self)] if self.cfg.log.image_every else []
        if "skipped_images" in self.modules():
            hooks.append(LogSkippedImages(self.stream, self.skipped))
        return hooks

    # -- losses -----------------------------------------------------------------------------------
    def autoencoder_loss(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """(x_hat, loss without GAN, the reconstruction term the GAN weight balances, logs)."""
        raise NotImplementedError

    def _ae_loss(self, x: torch.Tensor, gan_on: bool):
        x_hat, loss, rec_term, logs = self.autoencoder_loss(x)
        if gan_on:
            # The discriminator's own gradients from this term are discarded (its optimiser
            # zeroes them), so it runs unwrapped: no DDP all-reduce for nothing.
            g_loss = generator_loss(self.disc(x_hat.contiguous()))
            weight = adaptive_weight(
                rec_term, g_loss, self.model.last_layer(), self.cfg.disc.weight
            )
            loss = loss + weight * self.cfg.disc.factor * g_loss
            logs.update({"g_loss": g_loss.item(), "d_weight": weight.item()})
        self._fakes[_key(x)] = x_hat.detach()
        logs["loss"] = loss.item()
        return loss, logs

    def _disc_loss(self, x: torch.Tensor):
        fake = self._fakes.pop(_key(x), None)
        if fake is None:  # the autoencoder step was skipped (non-finite loss): decode again
            with torch.no_grad():
                fake = self.model(x).sample
        logits_real = self.disc_train(x.contiguous())
        logits_fake = self.disc_train(fake.contiguous())
        d_loss = self.cfg.disc.factor * discriminator_loss(
            self.cfg.disc.loss, logits_real, logits_fake
        )
        return d_loss, {
            "d_loss": d_loss.item(),
            "logits_real": logits_real.mean().item(),
            "logits_fake": logits_fake.mean().item(),
        }

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction through the active decoder (eval mode)."""
        raise NotImplementedError


class VQGANTask(ImageTask):
    model: VQGAN

    def __init__(self, cfg: VQGANExperimentConfig, data: LabelledImages | None = None):
        torch.manual_seed(cfg.train.seed)
        super().__init__(cfg, VQGAN(cfg.model), data)

    def autoencoder_loss(self, x):
        out = self.ae(x)
        rec = self.reconstruction(x, out.sample).mean()
        loss = rec + self.cfg.loss.codebook_weight * out.vq.total
        usage = out.indices.unique().numel() / self.cfg.model.n_embed
        logs = {
            "rec": rec.item(),
            "vq": out.vq.total.item(),
            "commitment": out.vq.commitment.item(),
            "codebook_usage": usage,
        }
        return out.sample, loss, rec, logs

    @torch.no_grad()
    def reconstruct(self, x):
        return self.model(x).sample


class KLTask(ImageTask):
    model: KLAutoencoder

    def __init__(self, cfg: KLExperimentConfig, data: LabelledImages | None = None):
        torch.manual_seed(cfg.train.seed)
        super().__init__(cfg, KLAutoencoder(cfg.model), data)
        self.objective = KLObjective(cfg.loss).to(self.device)
        self.objective_train: nn.Module = self.objective

    def modules(self) -> dict[str, nn.Module]:
        return {**super().modules(), "objective": self.objective}

    def extra_ae_parameters(self) -> list[nn.Parameter]:
        return list(self.objective.parameters())

    def enter_stage(self, plan: StagePlan) -> None:
        super().enter_stage(plan)
        self.objective_train = wrap_ddp(self.objective)  # its log-variance must stay in sync too

    def autoencoder_loss(self, x):
        out = self.ae(x)
        terms = self.objective_train(self.reconstruction(x, out.sample), out.kl)
        logs = {
            "nll": terms.nll.item(),
            "kl": terms.kl.item(),
            "logvar": self.objective.logvar.item(),
            "rec": (x - out.sample).abs().mean().item(),
        }
        return out.sample, terms.total, terms.nll, logs

    @torch.no_grad()
    def reconstruct(self, x):
        return self.model(x, sample_posterior=False).sample

    @torch.no_grad()
    def finish(self) -> None:
        """Measure `scaling_factor` on training images with the final encoder (into the config)."""
        self.model.eval()
        n = min(self.cfg.model.scaling_images, len(self.data))
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        index = torch.randperm(len(self.data), generator=gen)[:n]
        size = self.cfg.train.batch_size
        batches = [
            float_batch(self.data, index[i : i + size]).to(self.device) for i in range(0, n, size)
        ]
        self.cfg.model.scaling_factor = self.model.measure_scaling_factor(batches)


def _key(x: torch.Tensor) -> tuple[int, tuple[int, ...]]:
    """A micro-batch's identity: the trainer re-splits the same batch tensor for each optimiser."""
    return x.data_ptr(), tuple(x.shape)


def _check_images(data: LabelledImages | StreamImages, model_cfg: Any) -> None:
    c, h, w = data.image_shape
    if c != model_cfg.in_channels:
        raise ConfigError("model.in_channels", f"is {model_cfg.in_channels}, the images have {c}")
    if h != model_cfg.resolution or w != model_cfg.resolution:
        raise ConfigError(
            "model.resolution",
            f"is {model_cfg.resolution}, the images are {h}x{w} (set data.image_size to resize)",
        )


class ReconstructionGrid:
    """Every `log.image_every` steps (rank 0): originals over reconstructions, as a PNG."""

    def __init__(self, task: ImageTask):
        self.task = task
        n = min(task.cfg.log.n_images, len(task.data))
        self.images = float_batch(task.data, torch.arange(n)).to(task.device)

    def __call__(self, trainer: Any, logs: dict[str, float]) -> None:
        every = self.task.cfg.log.image_every
        if trainer.run_dir is None or not trainer.dist.is_main:
            return
        if trainer.step % every and trainer.step != trainer.cfg.steps:
            return
        model = self.task.model
        was_training = model.training
        model.eval()
        recon = self.task.reconstruct(self.images)
        model.train(was_training)  # the next step re-applies the stage's frozen parts anyway
        save_grid(
            torch.cat([self.images, recon.float()]),
            trainer.run_dir / "images" / f"recon_{trainer.step:07d}.png",
            nrow=len(self.images),
        )


def save_grid(images: torch.Tensor, path: Path, nrow: int) -> None:
    """(N, C, H, W) in [-1, 1] -> one PNG with `nrow` images per row."""
    from PIL import Image

    pixels = to_uint8(images.cpu())  # (N, C, H, W) uint8
    n, c, h, w = pixels.shape
    rows = -(-n // nrow)
    grid = torch.zeros(c, rows * h, nrow * w, dtype=torch.uint8)
    for i, img in enumerate(pixels):
        r, col = divmod(i, nrow)
        grid[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    array = grid.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if c == 1 else np.ascontiguousarray(array)).save(path)


EXPERIMENTS.register("vqgan")(ExperimentKind(VQGANExperimentConfig, VQGANTask))
EXPERIMENTS.register("kl")(ExperimentKind(KLExperimentConfig, KLTask))
