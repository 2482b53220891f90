"""Appendix A.1's 1-D toy: a monotone c-Lipschitz generator pushing N(0, 1) onto Uniform[-A, A].

Closed form (derivation in docs/theory.md). Write phi for the N(0, 1) density and u = 1 / (2A).
For increasing G with 0 <= G' <= c the pushed density at G(z) is phi(z) / G'(z) >= phi(z) / c, so
wherever phi(z) > c u the density must overshoot u. The best map spreads that central part as much
as allowed (G' = c) and matches u exactly in the tails (G' = phi / u), giving

    TV*(c) = (2 Phi(z0) - 1) - c z0 / A,   z0 = sqrt(2 ln(c* / c)),   for c < c* = 2 A phi(0),

and TV*(c) = 0 for c >= c* = A sqrt(2 / pi). Near the threshold TV* ~ (4 sqrt(2) / 3) phi(0)
(1 - c / c*)^(3/2): a polynomial law, so the complexity needed for tolerance eps is
c* (1 - O(eps^(2/3))), and c* itself grows linearly with the target's width A.
`numerical_tv` checks the closed form by optimising a piecewise-linear monotone map directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from dae.config import check

PHI0 = 1.0 / math.sqrt(2 * math.pi)


def threshold(half_width: float) -> float:
    """c* = 2 A phi(0): the smallest Lipschitz bound with an exact push-forward."""
    return 2 * half_width * PHI0


def closed_form_tv(c: float, half_width: float) -> float:
    """Best total variation to Uniform[-A, A] reachable with G' <= c (monotone G)."""
    c_star = threshold(half_width)
    if c >= c_star:
        return 0.0
    z0 = math.sqrt(2 * math.log(c_star / c))
    return math.erf(z0 / math.sqrt(2)) - c * z0 / half_width


def uniform_latent_tv(c: float, half_width: float) -> float:
    """Same problem from a Uniform[-1, 1] latent: TV* = max(0, 1 - c / A) (density is flat)."""
    return max(0.0, 1.0 - c / half_width)


def _tv_piecewise(
    slopes: torch.Tensor,
    offset: torch.Tensor,
    knots: torch.Tensor,
    mass: torch.Tensor,
    half_width: float,
) -> torch.Tensor:
    """Exact TV between the push-forward of a piecewise-linear increasing map and the uniform."""
    u = 1.0 / (2 * half_width)
    lengths = slopes * (knots[1:] - knots[:-1])  # image length of each cell
    ends = offset + torch.cumsum(lengths, 0)
    starts = ends - lengths
    density = mass / lengths.clamp_min(1e-12)
    inside = (ends.clamp(max=half_width) - starts.clamp(min=-half_width)).clamp_min(0)
    l1 = (density - u).abs() * inside + density * (lengths - inside)  # |p - u| over each cell
    uncovered = (2 * half_width - inside.sum()).clamp_min(0) * u
    return 0.5 * (l1.sum() + uncovered)


def numerical_tv(
    c: float,
    half_width: float,
    cells: int = 400,
    span: float = 7.0,
    steps: int = 1500,
    lr: float = 0.05,
    seed: int = 0,
) -> float:
    """Minimise TV over monotone piecewise-linear G with slopes in (0, c] by Adam."""
    knots = torch.linspace(-span, span, cells + 1, dtype=torch.float64)
    cdf = 0.5 * (1 + torch.erf(knots / math.sqrt(2)))
    mass = cdf[1:] - cdf[:-1]
    mass[0] += cdf[0]  # the far tails ride on the end cells; their mass is ~1e-12 anyway
    mass[-1] += 1 - cdf[-1]
    gen = torch.Generator().manual_seed(seed)
    # Slopes c * sigmoid(theta) keep 0 < G' <= c by construction: no projection needed.
    theta = (0.1 * torch.randn(cells, generator=gen, dtype=torch.float64)).requires_grad_()
    offset = torch.tensor(-half_width, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta, offset], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best = math.inf
    for _ in range(steps):
        tv = _tv_piecewise(c * torch.sigmoid(theta), offset, knots, mass, half_width)
        best = min(best, tv.item())
        opt.zero_grad(set_to_none=True)
        tv.backward()
        opt.step()
        sched.step()
    return best


def scaling_exponent(half_width: float, gaps: list[float]) -> float:
    """Least-squares slope of log TV* against log(1 - c / c*) over the given relative gaps."""
    c_star = threshold(half_width)
    xs = [math.log(g) for g in gaps]
    ys = [math.log(closed_form_tv(c_star * (1 - g), half_width)) for g in gaps]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False)) / sum(
        (x - mx) ** 2 for x in xs
    )


@dataclass
class OneDConfig:
    half_width: float = field(default=2.0, metadata={"help": "target is Uniform[-A, A]"})
    ratios: list[float] = field(
        default_factory=lambda: [0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.95, 1.0, 1.2],
        metadata={"help": "Lipschitz bounds c to solve numerically, as fractions of c*"},
    )
    steps: int = field(default=1500, metadata={"help": "Adam steps of the numerical solver"})
    cells: int = field(default=400, metadata={"help": "pieces of the piecewise-linear map"})

    def __post_init__(self) -> None:
        check(self.half_width > 0, "half_width", f"must be > 0, got {self.half_width}")
        check(len(self.ratios) >= 1 and all(r > 0 for r in self.ratios), "ratios", "must be > 0")
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.cells >= 4, "cells", f"must be >= 4, got {self.cells}")


def run_oned(cfg: OneDConfig) -> dict[str, Any]:
    """Closed form vs numerical TV*(c), the uniform-latent comparison, and the scaling exponent."""
    a, c_star = cfg.half_width, threshold(cfg.half_width)
    rows = []
    for r in cfg.ratios:
        c = r * c_star
        rows.append(
            {
                "c": c,
                "ratio": r,
                "closed_form": closed_form_tv(c, a),
                "numerical": numerical_tv(c, a, cells=cfg.cells, steps=cfg.steps),
                "uniform_latent": uniform_latent_tv(c, a),
            }
        )
    gaps = [1e-4, 1e-3, 1e-2]
    return {
        "half_width": a,
        "c_star": c_star,
        "rows": rows,
        "exponent_near_threshold": scaling_exponent(a, gaps),
        "exponent_gaps": gaps,
        "c_star_per_unit_width": c_star / a,
    }
