"""The PatchGAN discriminator of pix2pix / taming (`NLayerDiscriminator`), with a choice of
normalisation layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
import torch.distributed as dist
from torch import nn

from dae.config import check
from dae.losses.gan import MAX_WEIGHT, GanLoss

# batch: taming's default. actnorm: taming's `use_actnorm` (Glow), a per-channel affine map set
# from the first batch it sees, then learned, so no batch's statistics are normalised away.
# (No GroupNorm: it normalises each image on its own, so a global contrast change is invisible.)
DiscNorm = Literal["batch", "actnorm", "none"]
DISC_NORMS: tuple[str, ...] = get_args(DiscNorm)


@dataclass
class DiscriminatorConfig:
    n_layers: int = field(default=3, metadata={"help": "strided conv layers (3: 70x70 patches)"})
    ndf: int = field(default=64, metadata={"help": "filters in the first layer"})
    loss: GanLoss = field(default="hinge", metadata={"help": "hinge or vanilla"})
    weight: float = field(default=0.8, metadata={"help": "disc_weight: scales the adaptive weight"})
    start: int = field(
        default=0, metadata={"help": "disc_start: stage step at which the GAN terms switch on"}
    )
    factor: float = field(default=1.0, metadata={"help": "disc_factor once active"})
    max_weight: float = field(
        default=MAX_WEIGHT,
        metadata={
            "help": "cap on the adaptive weight's gradient ratio (taming: 1e4); a discriminator "
            "at chance has a tiny gradient, so without a lower cap its term is scaled up to the "
            "reconstruction term's size however little it says"
        },
    )
    shared_batch: bool = field(
        default=False,
        metadata={
            "help": "real and reconstructed images in one discriminator batch, so BatchNorm's "
            "statistics cover both (taming passes them separately, which normalises away every "
            "difference of the two batches' channel means)"
        },
    )
    norm: DiscNorm = field(
        default="batch",
        metadata={
            "help": "normalisation after each strided conv: batch (taming), actnorm (taming's "
            "use_actnorm: per-channel scale and shift set from the first batch, then learned) "
            "or none; actnorm and none score each image independently of the rest of its batch"
        },
    )

    def __post_init__(self) -> None:
        check(self.norm in DISC_NORMS, "norm", f"must be one of {DISC_NORMS}, got {self.norm!r}")
        check(self.n_layers >= 1, "n_layers", f"must be >= 1, got {self.n_layers}")
        check(self.ndf >= 1, "ndf", f"must be >= 1, got {self.ndf}")
        check(self.weight >= 0, "weight", f"must be >= 0, got {self.weight}")
        check(self.start >= 0, "start", f"must be >= 0, got {self.start}")
        check(self.max_weight > 0, "max_weight", f"must be > 0, got {self.max_weight}")


class ActNorm(nn.Module):
    """Glow's activation normalisation: y = scale * (x + loc) per channel. The first batch in
    training mode sets loc and scale so that its output has zero mean and unit variance per
    channel (averaged over ranks under torchrun); after that both are ordinary parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        # a buffer, so that a checkpoint carries it and a resumed run does not initialise again
        self.register_buffer("initialized", torch.zeros((), dtype=torch.uint8))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.loc)
        nn.init.ones_(self.scale)
        self.initialized.zero_()

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        flat = x.detach().float().transpose(0, 1).flatten(1)
        mean, std = flat.mean(1), flat.std(1)
        if dist.is_available() and dist.is_initialized():  # every rank starts from one map
            stats = torch.stack([mean, std])
            dist.all_reduce(stats)
            mean, std = stats / dist.get_world_size()
        self.loc.copy_(-mean.view_as(self.loc))
        self.scale.copy_((1.0 / (std + 1e-6)).view_as(self.scale))
        self.initialized.fill_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.initialized:
            self._initialize(x)
        return self.scale * (x + self.loc)


def _norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "actnorm":
        return ActNorm(channels)
    return nn.Identity()


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> (B, 1, h, w) real/fake logits per overlapping patch."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last block keeps the resolution
            layers += [
                # a norm layer with a shift makes the conv's bias redundant
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=norm == "none"),
                _norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """pix2pix init: conv N(0, 0.02), BatchNorm scale N(1, 0.02), shift 0; ActNorm waits for
        its next batch."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, ActNorm):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)
