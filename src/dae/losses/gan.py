"""GAN objectives (hinge, vanilla) and taming's adaptive generator weight."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

GanLoss = Literal["hinge", "vanilla"]
MAX_WEIGHT = 1e4  # taming's clamp of the adaptive weight (`disc.max_weight`'s default)


def discriminator_loss(
    kind: GanLoss, logits_real: torch.Tensor, logits_fake: torch.Tensor
) -> torch.Tensor:
    """Discriminator objective, averaged over patches (real -> +, fake -> -), in fp32."""
    # Under bf16 autocast the logits are bf16 (8-bit mantissa): the hinge and its mean in fp32.
    logits_real, logits_fake = logits_real.float(), logits_fake.float()
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator objective; taming uses `-mean(D(x_hat))` for both hinge and vanilla (fp32)."""
    return -logits_fake.float().mean()


def adaptive_weight(
    rec_loss: torch.Tensor,
    gan_loss: torch.Tensor,
    last_layer: torch.nn.Parameter,
    disc_weight: float,
    max_weight: float = MAX_WEIGHT,
) -> torch.Tensor:
    """`disc_weight * clamp(|grad rec| / (|grad gan| + 1e-4), 0, max)` at `last_layer`, detached.

    Balances the two terms' pulls on the decoder's output layer (Esser et al. 2021, eq. 7).
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (gan_grad.float().norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach() * disc_weight
