"""Lipschitz complexity of encoder and decoder (paper Appendix B.2, Figure 4), and its trainer hook.

The complexity of a map f is the average over pairs (x, x') of ‖f(x) − f(x')‖ / ‖x − x'‖. dae's
pairing (documented in docs/metrics.md): each data point x with a small Gaussian perturbation
x' = x + ε·σ·n, n ~ N(0, I), σ the batch's per-coordinate standard deviation, so the ratio measures
the map's local slope around the data (the quantity a weak decoder is meant to keep small).
`pairing="shuffle"` pairs data points with other data points instead (a global slope).

The encoder map is x -> latent mean (pre-quantisation for VQ: the quantiser is piecewise constant);
the decoder map is z -> decode(z) with the decoder the schedule has active. The perceptual variant
replaces image distances by feature distances ‖φ(a) − φ(b)‖ (φ a feature extractor's pool vector):
the encoder's denominator, and the decoder's numerator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from dae.autoencoder.base import DecoupledAutoencoder

Pairing = Literal["perturb", "shuffle"]


def _partner(x: torch.Tensor, pairing: Pairing, eps: float, gen: torch.Generator) -> torch.Tensor:
    if pairing == "shuffle":
        perm = torch.randperm(len(x), generator=gen)
        perm = torch.where(perm == torch.arange(len(x)), (perm + 1) % len(x), perm)  # no self-pairs
        return x[perm]
    scale = x.std(0, keepdim=True).clamp_min(1e-8)  # per coordinate, across the batch
    return x + eps * scale * torch.randn(x.shape, generator=gen).to(x)


def _dist(a: torch.Tensor, b: torch.Tensor, phi: Callable | None) -> torch.Tensor:
    if phi is not None:
        a, b = phi(a), phi(b)
    return (a - b).flatten(1).norm(dim=1)


@torch.no_grad()
def lipschitz_ratio(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    pairing: Pairing = "perturb",
    eps: float = 0.05,
    seed: int = 0,
    phi_in: Callable | None = None,
    phi_out: Callable | None = None,
) -> float:
    """Mean over pairs of ‖f(x) − f(x')‖ / ‖x − x'‖ (distances through `phi_in`/`phi_out` if given)."""
    gen = torch.Generator().manual_seed(seed)
    x2 = _partner(x, pairing, eps, gen)
    num = _dist(f(x), f(x2), phi_out)
    den = _dist(x, x2, phi_in).clamp_min(1e-12)
    return float((num / den).mean())


@torch.no_grad()
def encoder_decoder_lipschitz(
    model: DecoupledAutoencoder,
    x: torch.Tensor,
    pairing: Pairing = "perturb",
    eps: float = 0.05,
    seed: int = 0,
    phi: Callable | None = None,
) -> dict[str, float]:
    """{"lipschitz/encoder", "lipschitz/decoder"} (+ "..._perceptual" with `phi`) on the batch `x`."""

    def encode(v):
        # VQ: the continuous pre-quantisation latent; the quantised one is piecewise constant.
        return model.encode(v) if model.kind == "vq" else model.latent(v)

    decode = model.decode

    z = encode(x)
    out = {
        "lipschitz/encoder": lipschitz_ratio(encode, x, pairing, eps, seed),
        "lipschitz/decoder": lipschitz_ratio(decode, z, pairing, eps, seed),
    }
    if phi is not None:
        out["lipschitz/encoder_perceptual"] = lipschitz_ratio(
            encode, x, pairing, eps, seed, phi_in=phi
        )
        out["lipschitz/decoder_perceptual"] = lipschitz_ratio(
            decode, z, pairing, eps, seed, phi_out=phi
        )
    return out


class LipschitzHook:
    """Trainer hook: every `every` steps, adds the Lipschitz complexities of the model to the logs.

    `every` must be a multiple of `train.log_every` so the values land in a logged row. The batch is
    fixed (`batch`), so the curve shows the model changing, not the data.
    """

    def __init__(
        self,
        batch: torch.Tensor,
        every: int,
        pairing: Pairing = "perturb",
        eps: float = 0.05,
        phi: Callable | None = None,
    ):
        if every < 1:
            raise ValueError(f"lipschitz every must be >= 1, got {every}")
        self.batch, self.every, self.pairing, self.eps, self.phi = batch, every, pairing, eps, phi

    def __call__(self, trainer, logs: dict[str, float]) -> None:
        if trainer.step % self.every and trainer.step != trainer.cfg.steps:
            return
        if self.every % trainer.cfg.log_every:
            raise ValueError(
                f"lipschitz every ({self.every}) must be a multiple of train.log_every ({trainer.cfg.log_every})"
            )
        model = trainer.task.model
        was_training = {m: m.training for m in model.modules()}
        model.eval()  # dropout off: measure the function, not a random draw of it
        device = next(model.parameters()).device
        logs.update(
            encoder_decoder_lipschitz(
                model, self.batch.to(device), self.pairing, self.eps, 0, self.phi
            )
        )
        for m, flag in was_training.items():
            m.train(flag)


def hook_for_task(task, every: int, n: int = 256, **kwargs) -> LipschitzHook:
    """A `LipschitzHook` on the first `n` examples of the task's batch of step 0 (fixed)."""
    batch = task.batch(0)
    batch = batch[0] if isinstance(batch, tuple | list) else batch
    return LipschitzHook(batch[:n].detach().clone(), every, **kwargs)
