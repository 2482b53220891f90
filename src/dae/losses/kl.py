"""The latent-diffusion KL-AE objective (without the GAN term): a learned-variance Laplace
likelihood on the reconstruction plus a small KL to N(0, I)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

from dae.config import check
from dae.losses.reconstruction import ReconstructionConfig


@dataclass
class KLLossConfig(ReconstructionConfig):
    kl_weight: float = field(default=1e-6, metadata={"help": "weight of KL(q(z|x) || N(0, I))"})
    logvar_init: float = field(
        default=0.0, metadata={"help": "initial learned output log-variance"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.kl_weight >= 0, "kl_weight", f"must be >= 0, got {self.kl_weight}")


class KLTerms(NamedTuple):
    total: torch.Tensor  # nll + kl_weight * kl
    nll: torch.Tensor  # sum over pixels / B of rec / exp(logvar) + logvar
    kl: torch.Tensor  # sum over latent elements / B


class KLObjective(nn.Module):
    """Holds the learned scalar log-variance, trained with the decoder (`logvar` in checkpoints)."""

    def __init__(self, cfg: KLLossConfig):
        super().__init__()
        self.kl_weight = cfg.kl_weight
        self.logvar = nn.Parameter(torch.tensor(float(cfg.logvar_init)))

    def forward(self, rec: torch.Tensor, kl: torch.Tensor) -> KLTerms:
        """`rec` (B, C, H, W) per-pixel loss, `kl` (B,) -> batch-mean of per-image sums."""
        b = rec.shape[0]
        nll = (rec.float() / self.logvar.exp() + self.logvar).sum() / b
        kl = kl.sum() / b
        return KLTerms(nll + self.kl_weight * kl, nll, kl)
