"""A small SimCLR encoder (Chen et al. 2020): two augmented views, NT-Xent loss, plain torch ops.

It supplies the "latent learned for discrimination" of DCGAN-SimCLR. torchvision is not usable
here, so the augmentations (random resized crop, flip, colour jitter, grayscale) are written as
batched tensor ops: one affine `grid_sample` does crop + resize + flip for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dae.autoencoder.dcgan import ConvEncoder
from dae.config import check


@dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] = field(
        default=(0.2, 1.0), metadata={"help": "area fraction range of the random resized crop"}
    )
    crop_ratio: tuple[float, float] = field(
        default=(3 / 4, 4 / 3), metadata={"help": "aspect ratio range of the crop"}
    )
    jitter: float = field(default=0.4, metadata={"help": "brightness/contrast/saturation strength"})
    hue: float = field(default=0.1, metadata={"help": "hue rotation strength (fraction of a turn)"})
    jitter_p: float = field(default=0.8, metadata={"help": "probability of colour jitter"})
    gray_p: float = field(default=0.2, metadata={"help": "probability of grayscale"})

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        check(
            0 < lo <= hi <= 1,
            "crop_scale",
            f"must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}",
        )
        check(
            0 < self.crop_ratio[0] <= self.crop_ratio[1],
            "crop_ratio",
            f"bad range {self.crop_ratio}",
        )
        for key in ("jitter_p", "gray_p"):
            check(0 <= getattr(self, key) <= 1, key, f"must be in [0, 1], got {getattr(self, key)}")


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_resized_crop_flip(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Crop a random box (area, aspect ratio as configured), resize it to the input size, flip half.

    In `affine_grid` coordinates the image spans [-1, 1]; a box of relative size (sw, sh) centred at
    (cx, cy) is the affine map `diag(sw * flip, sh) @ p + (cx, cy)`.
    """
    n = x.shape[0]
    area = _uniform(n, *cfg.crop_scale, gen)
    log_r = _uniform(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), gen)
    ratio = log_r.exp()
    sw = (area * ratio).sqrt().clamp(max=1.0)
    sh = (area / ratio).sqrt().clamp(max=1.0)
    cx = (1 - sw) * (2 * torch.rand(n, generator=gen) - 1)
    cy = (1 - sh) * (2 * torch.rand(n, generator=gen) - 1)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sw * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma, `(B, 3, H, W) -> (B, 1, H, W)`."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate colours about the grey axis by `angle` radians `(B,)` (a YIQ-style hue shift)."""
    axis = torch.full((3,), 3**-0.5, device=x.device, dtype=x.dtype)
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    outer = torch.outer(axis, axis)
    cross = (
        torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=x.dtype, device=x.device) * 3**-0.5
    )
    rot = (
        cos * torch.eye(3, dtype=x.dtype, device=x.device) + sin * cross + (1 - cos) * outer
    )  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", rot, x)


def colour_jitter(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None
) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter (prob. `jitter_p`), then grayscale (`gray_p`).

    Works on images in [0, 1]; each factor is drawn per image, the order is fixed (a simplification
    of torchvision's random order that does not change what the encoder must become invariant to).
    """
    n, s = x.shape[0], cfg.jitter

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.view(-1, 1, 1, 1).to(x)

    bright = per_image(_uniform(n, 1 - s, 1 + s, gen))
    contrast = per_image(_uniform(n, 1 - s, 1 + s, gen))
    sat = per_image(_uniform(n, 1 - s, 1 + s, gen))
    hue = _uniform(n, -cfg.hue, cfg.hue, gen).to(x) * 2 * math.pi
    apply = per_image((torch.rand(n, generator=gen) < cfg.jitter_p).float())
    gray = per_image((torch.rand(n, generator=gen) < cfg.gray_p).float())
    y = (x * bright).clamp(0, 1)
    y = (
        (y - _gray(y).mean((2, 3), keepdim=True)) * contrast + _gray(y).mean((2, 3), keepdim=True)
    ).clamp(0, 1)
    y = ((y - _gray(y)) * sat + _gray(y)).clamp(0, 1)
    y = _rotate_hue(y, hue).clamp(0, 1)
    y = apply * y + (1 - apply) * x
    return gray * _gray(y).expand_as(y) + (1 - gray) * y


def simclr_view(
    x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator | None = None
) -> torch.Tensor:
    """One augmented view of images in [-1, 1] `(B, 3, H, W)`, returned in [-1, 1]."""
    y = random_resized_crop_flip(x, cfg, gen)
    return colour_jitter((y + 1) / 2, cfg, gen) * 2 - 1


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent: each of the 2B embeddings must pick its other view among the 2B - 1 others.

    `z1`, `z2`: `(B, D)`, row i of each is a view of image i; returns the mean loss over 2B anchors.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    sim = z @ z.T / temperature  # (2B, 2B)
    n = z1.shape[0]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


@dataclass
class SimCLRConfig:
    feature_dim: int = field(default=100, metadata={"help": "backbone output = DCGAN latent size"})
    width: int = field(default=64, metadata={"help": "backbone channels at 32x32"})
    proj_dim: int = field(default=64, metadata={"help": "projection head output size"})
    temperature: float = field(default=0.5, metadata={"help": "NT-Xent temperature"})
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        for key in ("feature_dim", "width", "proj_dim"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


class SimCLR(nn.Module):
    """Backbone (the five-layer `ConvEncoder`) + MLP projection head; the feature is the backbone's.

    It trains on the one `Trainer` with its default single-stage plan: the same loop, logging and
    checkpoints as every other dae model.
    """

    def __init__(self, cfg: SimCLRConfig, channels: int = 3):
        super().__init__()
        self.cfg = cfg
        self.backbone = ConvEncoder(cfg.feature_dim, cfg.width, channels)
        self.head = nn.Sequential(
            nn.Linear(cfg.feature_dim, cfg.feature_dim),
            nn.ReLU(True),
            nn.Linear(cfg.feature_dim, cfg.proj_dim),
        )

    def loss(
        self, x: torch.Tensor, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """NT-Xent between two augmented views of the batch `x` (in [-1, 1])."""
        v1, v2 = simclr_view(x, self.cfg.augment, gen), simclr_view(x, self.cfg.augment, gen)
        z = self.head(self.backbone(torch.cat([v1, v2])))  # one pass: BatchNorm sees both views
        loss = nt_xent(*z.chunk(2), temperature=self.cfg.temperature)
        return loss, {"simclr": loss.item()}
