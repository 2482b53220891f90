"""The vector-quantisation loss: codebook term + beta * commitment term (van den Oord et al.)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from dae.config import check
from dae.losses.reconstruction import ReconstructionConfig


@dataclass
class VQLossConfig(ReconstructionConfig):
    codebook_weight: float = field(default=1.0, metadata={"help": "weight of the VQ loss"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.codebook_weight >= 0, "codebook_weight", "must be >= 0")


class VQLosses(NamedTuple):
    total: torch.Tensor
    codebook: torch.Tensor  # ||sg[z] - e||^2: moves the codebook towards the encoder outputs
    commitment: torch.Tensor  # ||z - sg[e]||^2: keeps the encoder close to its code
    entropy: torch.Tensor | None = None  # LFQ's entropy term (unweighted), None for the others


def vq_losses(z: torch.Tensor, z_q: torch.Tensor, beta: float, legacy: bool = False) -> VQLosses:
    """`codebook + beta * commitment`; `legacy=True` is taming's swapped form (beta on codebook)."""
    codebook = F.mse_loss(z_q, z.detach())
    commitment = F.mse_loss(z, z_q.detach())
    total = beta * codebook + commitment if legacy else codebook + beta * commitment
    return VQLosses(total, codebook, commitment)
