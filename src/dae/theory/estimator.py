"""Estimate the complexity-induced distance d_c(P_z, P_x) = inf_{G: complexity <= c} MMD(G#P_z, P_x).

For each complexity c on the ladder, `restarts` generators of the family are trained at once by Adam
on the unbiased MMD^2 between G(z) and x mini-batches, then scored on *held-out* latent and data
samples (training-set scores would reward memorising the finite sample at large c). The infimum is
estimated by the best restart; the spread over restarts shows how reliable that minimum is. What it
is not: a certified infimum (training may stop above it, so each number is an upper bound up to
sampling noise), nor comparable across kernels or data sets.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from dae.config import check
from dae.theory.distance import DEFAULT_SCALES, MultiScaleMMD
from dae.theory.generators import BatchedGenerator, GeneratorConfig


@dataclass
class EstimatorConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    restarts: int = field(default=3, metadata={"help": "independent generators per complexity"})
    steps: int = field(default=250, metadata={"help": "Adam steps per complexity"})
    lr: float = field(default=0.02, metadata={"help": "Adam learning rate (cosine-decayed)"})
    batch_size: int = field(default=256, metadata={"help": "latent and data points per step"})
    kernel_scales: list[float] = field(
        default_factory=lambda: list(DEFAULT_SCALES),
        metadata={"help": "Gaussian bandwidths, as multiples of the data's median distance"},
    )
    epsilons: list[float] = field(
        default_factory=lambda: [0.01, 0.02, 0.06],
        metadata={"help": "tolerances eps on MMD for the smallest-complexity table"},
    )
    seed: int = field(default=0, metadata={"help": "seed for generator inits and batches"})

    def __post_init__(self) -> None:
        check(self.restarts >= 1, "restarts", f"must be >= 1, got {self.restarts}")
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(self.batch_size >= 2, "batch_size", f"must be >= 2, got {self.batch_size}")
        check(
            len(self.kernel_scales) >= 1 and all(s > 0 for s in self.kernel_scales),
            "kernel_scales",
            f"must be positive numbers, got {self.kernel_scales}",
        )
        check(all(e > 0 for e in self.epsilons), "epsilons", f"must be > 0, got {self.epsilons}")


def standardize(z: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Centre and scale isotropically to E|z|^2 = dim (statistics from `reference`, default `z`).

    A Lipschitz bound is not scale-free: a latent blown up 10x needs a 10x smaller c. Isotropic
    scaling removes that trivial advantage while keeping the latent's shape (no per-axis whitening).
    """
    ref = z if reference is None else reference
    mean = ref.mean(0)
    scale = ((ref - mean).square().sum(1).mean() / ref.shape[1]).sqrt().clamp_min(1e-12)
    return (z - mean) / scale


@torch.no_grad()
def init_affine_(gen: BatchedGenerator, x: torch.Tensor, seed: int) -> None:
    """Start the affine part at a Gaussian fit of the data: its mean plus its top principal axes.

    The infimum does not depend on the start, but the optimiser does: from a random affine map the
    MMD gradient (weak where kernels saturate) needs many steps just to find the data's scale. Each
    restart rotates (or reflects) the axes by its own random orthogonal matrix, so restarts differ.
    """
    r, d_in, d_out = gen.skip.shape
    k = min(d_in, d_out)
    xc = x - x.mean(0)
    _, s, vh = torch.linalg.svd(xc / len(x) ** 0.5, full_matrices=False)
    axes = s[:k, None] * vh[:k]  # (k, D): principal axes scaled by their std
    rng = torch.Generator().manual_seed(seed + 2)
    q, _ = torch.linalg.qr(torch.randn(r, k, k, generator=rng))
    # Alternate the orientation (det q = +1 / -1) across restarts: gradient descent cannot turn a
    # map's orientation through a singular matrix, so restarts must start on both sides.
    q[:, 0] *= torch.linalg.det(q).sign().view(r, 1) * torch.tensor(
        [(-1.0) ** i for i in range(r)]
    ).view(r, 1)
    skip = torch.zeros(r, d_in, d_out)
    skip[:, :k] = q @ axes
    if gen.family == "lipschitz":
        skip = skip / (gen.complexity * gen.mix)  # forward is c * mix * z S; projection clips it
    gen.skip.copy_(skip)
    gen.bias.copy_(x.mean(0).expand_as(gen.bias))
    gen.project_()


def fit_generators(
    z: torch.Tensor,
    x: torch.Tensor,
    complexity: float,
    mmd: MultiScaleMMD,
    cfg: EstimatorConfig,
    seed: int,
) -> BatchedGenerator:
    """Train `cfg.restarts` generators of complexity `c` pushing `z (N, d)` towards `x (M, D)`."""
    gen = BatchedGenerator(cfg.generator, complexity, z.shape[1], x.shape[1], cfg.restarts, seed)
    init_affine_(gen, x, seed)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    rng = torch.Generator().manual_seed(seed + 1)
    bz, bx = min(cfg.batch_size, len(z)), min(cfg.batch_size, len(x))
    for _ in range(cfg.steps):
        zb = z[torch.randint(len(z), (bz,), generator=rng)]
        xb = x[torch.randint(len(x), (bx,), generator=rng)]
        loss = mmd.mmd2(gen(zb), xb).sum()  # restarts are independent: their sum trains each
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        gen.project_()
    return gen


def distance_curve(
    z_train: torch.Tensor,
    z_eval: torch.Tensor,
    x_train: torch.Tensor,
    x_eval: torch.Tensor,
    cfg: EstimatorConfig,
) -> dict[str, Any]:
    """Held-out MMD per complexity: best over restarts, median, max, and all restarts.

    The latent is standardised first (`standardize`, with the training sample's statistics).
    """
    z_train, z_eval = standardize(z_train), standardize(z_eval, reference=z_train)
    mmd = MultiScaleMMD.for_data(x_train, cfg.kernel_scales)
    points = []
    for i, c in enumerate(cfg.generator.ladder):
        gen = fit_generators(z_train, x_train, c, mmd, cfg, seed=cfg.seed * 1000 + i)
        with torch.no_grad():
            d = mmd.distance(gen(z_eval), x_eval).tolist()
        points.append(
            {
                "complexity": c,
                "best": min(d),
                "median": statistics.median(d),
                "worst": max(d),
                "restarts": d,
            }
        )
    # The families are nested (a narrower MLP is a wider one with zero units; a smaller Lipschitz
    # ball sits in a larger one), so the true d_c is non-increasing: the running minimum of the
    # best restarts is also an upper bound on d_c, and a tighter one.
    envelope = math.inf
    for p in points:
        envelope = p["envelope"] = min(envelope, p["best"])
    return {"points": points, "bandwidths": list(mmd.bandwidths)}


def noise_floor(x_a: torch.Tensor, x_b: torch.Tensor, cfg: EstimatorConfig) -> float:
    """MMD between two independent data samples: what 'equal distributions' reads as here."""
    mmd = MultiScaleMMD.for_data(x_a, cfg.kernel_scales)
    return mmd.distance(x_a, x_b).item()


def smallest_complexity(curve: dict[str, Any], eps: float) -> float:
    """Smallest ladder complexity whose best distance is <= eps (inf if none reaches it)."""
    for p in curve["points"]:
        if p["best"] <= eps:
            return p["complexity"]
    return math.inf
