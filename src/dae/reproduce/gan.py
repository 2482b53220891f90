"""Paper Sec. 6.2 / Table 2 (right): DCGAN, DCGAN-SimCLR, VAEGAN and DAE-VAEGAN on CIFAR-10.

One experiment kind, `gan`, with a `variant`:

    dcgan         generator from N(0, I) vs discriminator          (scored on samples)
    dcgan-simclr  generator from the frozen SimCLR feature of x    (scored on reconstructions)
    vaegan        encoder + generator-as-decoder, ELBO + adversarial (reconstructions); with
                  `schedule.mode=dae` this is DAE-VAEGAN (stage 1: half-width generator)

Each step the trainer steps the "ae" optimiser (generator, plus encoder where it trains) and then
the "disc" optimiser, as `GANTask.optimizer_params` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dae.autoencoder.dcgan import (
    DCGAN,
    VAEGAN,
    ConvEncoder,
    DCGANConfig,
    Discriminator,
    SimCLRGAN,
)
from dae.autoencoder.simclr import SimCLR, SimCLRConfig
from dae.config import check
from dae.data.sampler import EpochSampler
from dae.data.transforms import to_float, to_uint8
from dae.schedule import ScheduleConfig, StagePlan
from dae.train.optim import OptimConfig
from dae.train.task import StepContext, Task, TrainConfig
from dae.train.trainer import Trainer

Variant = Literal["dcgan", "dcgan-simclr", "vaegan"]


@dataclass
class GANDataConfig:
    dataset: Literal["cifar10"] = field(default="cifar10", metadata={"help": "training images"})
    root: str | None = field(default=None, metadata={"help": "data root; default env DAE_DATA"})
    limit: int = field(default=0, metadata={"help": "use N random training images; 0: all"})
    hflip: bool = field(default=True, metadata={"help": "random horizontal flips"})

    def __post_init__(self) -> None:
        check(self.limit >= 0, "limit", f"must be >= 0, got {self.limit}")


@dataclass
class GANLossConfig:
    recon_weight: float = field(
        default=1.0, metadata={"help": "per-pixel L1 reconstruction weight"}
    )
    kl_weight: float = field(
        default=0.01, metadata={"help": "weight of KL(q(z|x) || N(0, I)) per pixel (vaegan)"}
    )
    adv_weight: float = field(
        default=0.05, metadata={"help": "adversarial weight of autoencoders (dcgan: always 1)"}
    )

    def __post_init__(self) -> None:
        for key in ("recon_weight", "kl_weight", "adv_weight"):
            check(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")


@dataclass
class SimCLRTrainConfig:
    model: SimCLRConfig = field(default_factory=SimCLRConfig)
    steps: int = field(default=1000, metadata={"help": "SimCLR training steps"})
    batch_size: int = field(default=256, metadata={"help": "SimCLR batch (2x views per step)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})

    def __post_init__(self) -> None:
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.batch_size >= 2, "batch_size", f"NT-Xent needs >= 2, got {self.batch_size}")


@dataclass
class GANExperimentConfig:
    kind: Literal["gan"] = "gan"
    variant: Variant = field(default="vaegan", metadata={"help": "dcgan, dcgan-simclr or vaegan"})
    data: GANDataConfig = field(default_factory=GANDataConfig)
    model: DCGANConfig = field(default_factory=DCGANConfig)
    loss: GANLossConfig = field(default_factory=GANLossConfig)
    simclr: SimCLRTrainConfig = field(default_factory=SimCLRTrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=2e-4, betas=(0.5, 0.999))  # the DCGAN recipe
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64))

    def __post_init__(self) -> None:
        check(
            self.variant == "vaegan" or self.schedule.mode == "baseline",
            "schedule.mode",
            f"the DAE schedule needs a trainable encoder; variant {self.variant!r} has none",
        )
        check(
            self.variant != "dcgan-simclr"
            or self.simclr.model.feature_dim == self.model.latent_dim,
            "simclr.model.feature_dim",
            f"must equal model.latent_dim ({self.model.latent_dim}) for dcgan-simclr",
        )


def random_subset(images: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """`n` images drawn without replacement by a seeded permutation (image folders are sorted by
    class, so a prefix would hold one or two classes only); all of them if `n` is 0 or too large."""
    if not n or n >= len(images):
        return images
    return images[torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]]


def load_train_images(cfg: GANDataConfig) -> torch.Tensor:
    """The training images as uint8 `(N, 3, 32, 32)`, via dae's image data module."""
    from dae.data.images import load_images

    return random_subset(load_images(cfg.dataset, "train", cfg.root).images, cfg.limit)


class ImageBatches:
    """Mini-batches as a pure function of the step: epoch-shuffled indices, seeded flips."""

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, hflip: bool):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        self.images, self.seed, self.hflip = images, seed, hflip
        self.sampler = EpochSampler(len(images), batch_size, seed)

    def __call__(self, step: int) -> torch.Tensor:
        x = to_float(self.images[self.sampler.indices(step)])
        if self.hflip:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            flip = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return x


class SimCLRTask(Task):
    """Contrastive pre-training of the DCGAN-SimCLR encoder."""

    def __init__(self, cfg: SimCLRTrainConfig, images: torch.Tensor, seed: int):
        torch.manual_seed(seed)
        self.model = SimCLR(cfg.model, images.shape[1])
        self.batches = ImageBatches(images, cfg.batch_size, seed, hflip=False)  # views flip anyway

    def batch(self, step: int) -> torch.Tensor:
        return self.batches(step)

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        return self.model.loss(batch)


def train_simclr(
    cfg: SimCLRTrainConfig, images: torch.Tensor, seed: int = 0, progress: bool = False
) -> tuple[SimCLR, list[dict]]:
    """Train a SimCLR encoder in memory on uint8 `images`; returns it (eval mode) and its log rows."""
    task = SimCLRTask(cfg, images, seed)
    train = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seed=seed,
        log_every=max(1, cfg.steps // 10),
        progress=progress,
        tensorboard=False,
    )
    trainer = Trainer(task, None, train, OptimConfig(lr=cfg.lr))
    history = trainer.fit()
    return task.model.eval(), history


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def build_gan_model(cfg: GANExperimentConfig, backbone: nn.Module | None = None) -> DCGAN:
    """The variant's model; dcgan-simclr gets `backbone` (default: an untrained one, to load into)."""
    if cfg.variant == "dcgan":
        return DCGAN(cfg.model)
    if cfg.variant == "vaegan":
        return VAEGAN(cfg.model)
    s = cfg.simclr.model
    return SimCLRGAN(cfg.model, backbone or ConvEncoder(s.feature_dim, s.width, cfg.model.channels))


class GANTask(Task):
    """A generator-or-autoencoder ("ae" optimiser) and a discriminator ("disc"), on uint8 images."""

    def __init__(
        self,
        cfg: GANExperimentConfig,
        images: torch.Tensor | None = None,
        backbone: nn.Module | None = None,
    ):
        self.cfg = cfg
        images = load_train_images(cfg.data) if images is None else images
        if cfg.variant == "dcgan-simclr" and backbone is None:
            backbone = train_simclr(cfg.simclr, images, cfg.train.seed)[0].backbone
        torch.manual_seed(cfg.train.seed)
        self.model = build_gan_model(cfg, backbone)
        self.disc = Discriminator(cfg.model.disc_width, cfg.model.channels)
        self.batches = ImageBatches(
            images, cfg.train.batch_size, cfg.train.batch_seed, cfg.data.hflip
        )

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model, "disc": self.disc}

    def optimizer_params(self, plan: StagePlan) -> dict[str, list[nn.Parameter]]:
        return {"ae": plan.parameters(), "disc": list(self.disc.parameters())}

    def start_stage(self, plan: StagePlan) -> None:
        # DAE stage 2 faces a new decoder; a discriminator tuned against the weak one would mislead it.
        if plan.reset_discriminator:
            for module in self.disc.modules():
                if module is not self.disc and hasattr(module, "reset_parameters"):
                    module.reset_parameters()

    def batch(self, step: int) -> torch.Tensor:
        return self.batches(step)

    def fake(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The generator's output for real batch `x` (samples or reconstructions) and its loss terms."""
        model = self.model
        if isinstance(model, VAEGAN):
            mu, logvar = model.encode(x)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            out = model.decode(z)
            kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1).mean() / x[0].numel()
            return out, {"recon": (out - x).abs().mean(), "kl": kl}
        if isinstance(model, SimCLRGAN):
            out = model.reconstruct(x)
            return out, {"recon": (out - x).abs().mean()}
        return model.sample(len(x)), {}

    def loss(self, name: str, batch: torch.Tensor, ctx: StepContext):
        w = self.cfg.loss
        if name == "ae":
            out, terms = self.fake(batch)
            ctx.outputs[ctx.micro] = out.detach()  # the discriminator's fakes: one forward a step
            adv = _bce(self.disc(out), real=True)  # non-saturating generator loss
            # A plain DCGAN has only the adversarial term; autoencoders weigh it against the rest.
            total = (1.0 if type(self.model) is DCGAN else w.adv_weight) * adv
            total = (
                total
                + w.recon_weight * terms.get("recon", 0.0)
                + w.kl_weight * terms.get("kl", 0.0)
            )
            logs = {"g_adv": adv.item(), **{k: v.item() for k, v in terms.items()}}
            return total, logs
        out = ctx.outputs.pop(ctx.micro, None)
        if out is None:  # the generator's loss was not finite and its step skipped: skip D's too
            return None, {}
        real, fake = self.disc(batch), self.disc(out)
        d_loss = 0.5 * (_bce(real, True) + _bce(fake, False))
        return d_loss, {
            "d_loss": d_loss.item(),
            "d_real": torch.sigmoid(real).mean().item(),
            "d_fake": torch.sigmoid(fake).mean().item(),
        }


@torch.no_grad()
def generate(
    model: DCGAN, images: torch.Tensor, n: int, seed: int = 0, batch_size: int = 250
) -> torch.Tensor:
    """uint8 outputs to score: prior samples of a DCGAN, reconstructions of `images[:n]` otherwise."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for i in range(0, n, batch_size):
        if type(model) is DCGAN:
            out = model.sample(min(batch_size, n - i), gen)
        else:
            out = model.reconstruct(to_float(images[i : min(n, i + batch_size)]))
        parts.append(to_uint8(out))
    return torch.cat(parts)
