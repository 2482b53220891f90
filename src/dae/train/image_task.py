"""Image autoencoder training (experiment kinds `vqgan` and `kl`): data, losses, GAN, image grids.

One step, per the trainer's optimiser order:
  "ae":   x -> model -> x_hat; reconstruction + bottleneck term (+ adaptive-weight GAN term once the
          stage has run `disc.start` steps); x_hat goes to the discriminator in `ctx.outputs`.
  "disc": hinge/vanilla loss on D(x) vs D(x_hat) (skipped before `disc.start`).
The DAE schedule decides which decoder is active and what trains; the GAN clock is the stage step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from dae.autoencoder.image import ImageAutoencoder
from dae.autoencoder.kl import KLAutoencoder, KLAutoencoderConfig
from dae.autoencoder.pretrained import check_init_for_schedule, load_pretrained
from dae.autoencoder.vqgan import VQGAN, VQGANConfig
from dae.config import ConfigError, check
from dae.data.images import ImageDataConfig, LabelledImages, float_batch, load_from_config
from dae.data.sampler import EpochSampler
from dae.data.stream import LogSkippedImages, SkippedImages, StreamImages, stream_loader
from dae.data.transforms import save_grid, to_float, to_uint8
from dae.losses.discriminator import DiscriminatorConfig, PatchDiscriminator
from dae.losses.equivariance import equivariance_loss
from dae.losses.gan import adaptive_weight, discriminator_loss, generator_loss
from dae.losses.kl import KLLossConfig, KLObjective
from dae.losses.reconstruction import Reconstruction
from dae.losses.vq import VQLossConfig
from dae.metrics.codebook import code_usage
from dae.metrics.diagnostics import channel_spectrum, pca_dims
from dae.metrics.reconstruction import reconstruct
from dae.schedule import ScheduleConfig, StagePlan
from dae.train.distributed import dist_info, resolve_device, wrap_ddp
from dae.train.optim import OptimConfig
from dae.train.task import StepContext, Task, TrainConfig


@dataclass
class ImageLogConfig:
    image_every: int = field(default=500, metadata={"help": "steps between reconstruction grids"})
    n_images: int = field(default=8, metadata={"help": "images in a reconstruction grid"})
    test_every: int = field(
        default=0,
        metadata={"help": "steps between held-out test L1/PSNR rows (a multiple of log_every)"},
    )
    test_images: int = field(default=1000, metadata={"help": "test-split images for test_every"})

    def __post_init__(self) -> None:
        check(self.image_every >= 0, "image_every", "must be >= 0 (0 disables)")
        check(self.n_images >= 1, "n_images", "must be >= 1")
        check(self.test_every >= 0, "test_every", "must be >= 0 (0 disables)")
        check(self.test_images >= 1, "test_images", "must be >= 1")


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
            len(self.data), cfg.train.batch_size, cfg.train.batch_seed, info.rank, info.world_size
        )
        self.stream = stream_loader(self.data, self.sampler, cfg.data, cfg.train, self.device)
        self.skipped = SkippedImages()
        if cfg.model.init_from:
            load_pretrained(model, cfg.model.init_from)
        self.model = model.to(self.device)
        self.disc = PatchDiscriminator(
            cfg.model.in_channels, cfg.disc.ndf, cfg.disc.n_layers, cfg.disc.norm
        )
        self.disc.to(self.device)
        self.reconstruction = Reconstruction(cfg.loss).to(self.device)
        # Weights are identical on every rank (same seed); training noise (dropout masks,
        # posterior samples) should not be, so each rank continues from its own seed.
        torch.manual_seed(cfg.train.seed + 1_000_003 * (info.rank + 1))
        self.ae: nn.Module = self.model  # what a training step calls: DDP-wrapped under torchrun
        self.disc_train: nn.Module = self.disc
        self.equivariance_on = False  # set per stage: only while the encoder trains

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
        # Here, since the schedule may have added a decoder. (Stage-2 re-initialisations then fill
        # channels_last tensors: the same random numbers in memory order, a different init.)
        if self.cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
            self.disc.to(memory_format=torch.channels_last)
        self.ae = wrap_ddp(self.model)
        self.disc_train = wrap_ddp(self.disc)
        trains_encoder = any(m in plan.trainable for m in self.model.encoder_modules())
        self.equivariance_on = self.cfg.loss.equivariance_weight > 0 and trains_encoder

    def ddp_modules(self) -> list[nn.Module]:
        return [self.ae, self.disc_train]

    def batch(self, step: int) -> torch.Tensor:
        if self.stream is not None:
            x = to_float(self.stream.batch(step))
        else:
            index = self.sampler.indices(step)
            x = float_batch(
                self.data, index, self.cfg.data.hflip, seed=self.cfg.train.batch_seed + step
            )
        if self.cfg.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.device, non_blocking=True)

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        gan_on = ctx.stage_step >= self.cfg.disc.start
        if name == "ae":
            return self._ae_loss(batch, gan_on, ctx)
        return self._disc_loss(batch, ctx) if gan_on else (None, {})

    def hooks(self) -> list[Any]:
        hooks: list[Any] = [ReconstructionGrid(self)] if self.cfg.log.image_every else []
        if self.cfg.log.test_every:
            hooks.append(TestReconstruction(self))
        if "skipped_images" in self.modules():
            hooks.append(LogSkippedImages(self.stream, self.skipped))
        return hooks

    # -- losses -----------------------------------------------------------------------------------
    def autoencoder_loss(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """(x_hat, loss without GAN, the reconstruction term the GAN weight balances, logs)."""
        raise NotImplementedError

    def add_equivariance(
        self, loss: torch.Tensor, x: torch.Tensor, z: torch.Tensor, logs: dict[str, float]
    ) -> torch.Tensor:
        """`loss` + the EQ-VAE term on latent `z` of `x`, in stages that train the encoder."""
        if not self.equivariance_on:
            return loss
        term = equivariance_loss(self.model.decode, x, z)
        logs["equivariance"] = term.item()
        return loss + self.cfg.loss.equivariance_weight * term

    def _ae_loss(self, x: torch.Tensor, gan_on: bool, ctx: StepContext):
        x_hat, loss, rec_term, logs = self.autoencoder_loss(x)
        if gan_on:
            # The discriminator's own gradients from this term are discarded (its optimiser
            # zeroes them), so it runs unwrapped: no DDP all-reduce for nothing.
            g_loss = generator_loss(self._fake_logits(x, x_hat))
            weight = adaptive_weight(
                rec_term,
                g_loss,
                self.model.last_layer(),
                self.cfg.disc.weight,
                self.cfg.disc.max_weight,
            )
            loss = loss + weight * self.cfg.disc.factor * g_loss
            logs.update({"g_loss": g_loss.item(), "d_weight": weight.item()})
        ctx.outputs[ctx.micro] = x_hat.detach()
        logs["loss"] = loss.item()
        return loss, logs

    def _fake_logits(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """The discriminator's logits on `x_hat`; with `disc.shared_batch` in a batch with the
        real `x`, as its own step sees them, so that BatchNorm normalises both steps alike."""
        if not self.cfg.disc.shared_batch:
            return self.disc(x_hat.contiguous())
        return self.disc(torch.cat([x.detach(), x_hat]).contiguous())[len(x) :]

    def _disc_loss(self, x: torch.Tensor, ctx: StepContext):
        fake = ctx.outputs.pop(ctx.micro, None)
        if fake is None:  # the autoencoder's loss was not finite and its step skipped: skip D's too
            return None, {}
        if self.cfg.disc.shared_batch:
            logits = self.disc_train(torch.cat([x, fake]).contiguous())
            logits_real, logits_fake = logits[: len(x)], logits[len(x) :]
        else:
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


class VQGANTask(ImageTask):
    model: VQGAN

    def __init__(self, cfg: VQGANExperimentConfig, data: LabelledImages | None = None):
        torch.manual_seed(cfg.train.seed)
        super().__init__(cfg, VQGAN(cfg.model), data)

    def autoencoder_loss(self, x):
        out = self.ae(x)
        rec = self.reconstruction(x, out.sample).mean()
        loss = rec + self.cfg.loss.codebook_weight * out.vq.total
        usage = out.indices.unique().numel() / self.cfg.model.codebook_size
        logs = {
            "rec": rec.item(),
            "vq": out.vq.total.item(),
            "commitment": out.vq.commitment.item(),
            "codebook_usage": usage,
        }
        if out.vq.entropy is not None:  # lfq
            logs["entropy"] = out.vq.entropy.item()
        if self.cfg.model.restart_dead_codes:  # vq and vq-l2 only (the config checks it)
            # codes moved by a restart in this step's forward (0 on most steps): a row shows every
            # restart when restart_dead_codes is a multiple of log_every (100 and 50 in the presets)
            logs["codes_restarted"] = float(self.model.quantize.restarted)
        loss = self.add_equivariance(loss, x, out.latent, logs)
        return out.sample, loss, rec, logs


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

    def ddp_modules(self) -> list[nn.Module]:
        return [*super().ddp_modules(), self.objective_train]

    def autoencoder_loss(self, x):
        out = self.ae(x)
        terms = self.objective_train(self.reconstruction(x, out.sample), out.kl)
        logs = {
            "nll": terms.nll.item(),
            "kl": terms.kl.item(),
            "logvar": self.objective.logvar.item(),
            "rec": (x - out.sample).abs().mean().item(),
        }
        # on the posterior mean: the deterministic latent a prior is trained on
        loss = self.add_equivariance(terms.total, x, out.mean, logs)
        return out.sample, loss, terms.nll, logs

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
        # The one place it is stored: the model's config, which goes into config.yaml and the
        # weights' header when training ends; `model.scaling_factor` reads it back.
        self.cfg.model.scaling_factor = self.model.measure_scaling_factor(batches)


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
        recon = reconstruct(model, self.images)
        model.train(was_training)  # the next step re-applies the stage's frozen parts anyway
        save_grid(
            trainer.run.images_dir / f"recon_{trainer.step:07d}.png",
            to_uint8(torch.cat([self.images, recon.float()])),
            nrow=len(self.images),
        )


def held_out_images(data: ImageDataConfig, n: int) -> LabelledImages | StreamImages:
    """The first `n` of a seeded permutation of the test split: the same subset for every run and
    seed (a streamed split keeps file names, decoded per use)."""
    test = load_from_config(replace(data, split="test", val_fraction=0.0))
    index = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:n]
    return test.subset(index)


class TestReconstruction:
    """Every `log.test_every` steps: L1 and PSNR of a fixed test-split subset through the active
    decoder (`test_rec`, `test_psnr` in metrics.jsonl), so convergence is judged on held-out data,
    and the number of channel directions holding 99 % of its latent's variance (`test_latent_dims`);
    for VQ models also the codes the subset uses and their perplexity (`test_codebook_used`,
    `test_codebook_perplexity`). It draws no random numbers, so a resumed run logs the same values."""

    def __init__(self, task: ImageTask):
        self.task = task
        cfg = task.cfg
        check(
            cfg.log.test_every % cfg.train.log_every == 0,
            "log.test_every",
            f"must be a multiple of train.log_every ({cfg.train.log_every})",
        )
        self.images = held_out_images(cfg.data, cfg.log.test_images)

    @torch.no_grad()
    def __call__(self, trainer: Any, logs: dict[str, float]) -> None:
        every = self.task.cfg.log.test_every
        if not trainer.dist.is_main or (trainer.step % every and trainer.step != trainer.cfg.steps):
            return
        model = self.task.model
        was_training = model.training
        model.eval()
        l1, se, n, latents, indices = 0.0, 0.0, 0, [], []
        for start in range(0, len(self.images), 250):
            x = float_batch(self.images, torch.arange(start, min(start + 250, len(self.images))))
            x = x.to(self.task.device)
            if isinstance(model, VQGAN):  # `latent`'s two halves, so that the codes can be counted
                indices.append(model.encode_to_indices(x))
                z = model.quantize.lookup(indices[-1])
            else:
                z = model.latent(x)  # `reconstruct`'s two halves, so that the latent can be kept
            x_hat = model.decode(z).float().clamp(-1, 1)
            l1 += (x_hat - x).abs().mean((1, 2, 3)).sum().item()
            se += ((x_hat - x) / 2).pow(2).mean((1, 2, 3)).clamp_min(1e-10).log10().sum().item()
            n += len(x)
            latents.append(z.float().cpu())
        model.train(was_training)
        logs["test_rec"] = l1 / n
        logs["test_psnr"] = -10.0 * se / n  # mean per-image PSNR on [0, 1] pixels
        # how many directions of its channel space the latent uses: a VQ latent collapsed onto a
        # plane shows 2 here, whatever its embed_dim (see dae.metrics.diagnostics)
        logs["test_latent_dims"] = pca_dims(channel_spectrum(torch.cat(latents)))
        if indices:
            # over the whole subset: a batch's `codebook_usage` cannot exceed its code positions
            # over the codebook size (2,048 / 16,384 = 12.5 % for a 32-image CIFAR-10 batch)
            usage = code_usage(torch.cat(indices).cpu(), model.cfg.codebook_size)
            logs["test_codebook_used"] = usage["n_codes"] - usage["dead_codes"]
            logs["test_codebook_perplexity"] = usage["perplexity"]
