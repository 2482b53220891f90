"""Theorem 4.1 made checkable: a linear autoencoder x -> D E x under norm bounds on E and D.

E is `(k, p)` with ||E|| <= a, D is `(p, k)` with ||D|| <= b, and the loss is the population
reconstruction error tr((I - DE) S (I - DE)^T) for a second-moment matrix S with eigenvalues
lam_1 >= ... >= lam_p. Only the product c = a * b matters (docs/theory.md derives it):

- spectral norms: the optimum is DE = min(c, 1) P_k (P_k: projection on the top-k eigenvectors),
  so PCA's error is reached iff a * b >= 1, and below that the excess is (1 - c)^2 sum_{i<=k} lam_i.
- Frobenius norms: ||DE||_* <= c, and the optimum water-fills: DE = sum_i m_i u_i u_i^T with
  m_i = max(0, 1 - tau / lam_i), sum m_i = c; PCA's error needs c >= k, and the i-th principal
  component is recovered at all only once c > sum_{j<i} (1 - lam_i / lam_j).

`closed_form` gives these; `train_grid` checks them by projected gradient descent over a grid
of (a, b), batched into one tensor program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from dae.config import check


@dataclass
class LinearAEConfig:
    singular_values: list[float] = field(
        default_factory=lambda: [3.0, 2.5, 2.0, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2],
        metadata={"help": "std of the data along each principal direction (p = their count)"},
    )
    rank: int = field(default=3, metadata={"help": "bottleneck width k"})
    norm: Literal["spectral", "frobenius"] = field(
        default="spectral", metadata={"help": "which matrix norm the bounds a, b constrain"}
    )
    enc_bounds: list[float] = field(
        default_factory=lambda: [round(0.1 * 1.35**i, 4) for i in range(15)],
        metadata={"help": "encoder bounds a (heat-map x axis)"},
    )
    dec_bounds: list[float] = field(
        default_factory=lambda: [round(0.1 * 1.35**i, 4) for i in range(15)],
        metadata={"help": "decoder bounds b (heat-map y axis)"},
    )
    steps: int = field(default=1500, metadata={"help": "projected gradient steps"})
    lr: float = field(default=0.05, metadata={"help": "step size, in units of 1 / Lipschitz"})
    restarts: int = field(default=2, metadata={"help": "random inits per (a, b); best is kept"})
    seed: int = field(default=0, metadata={"help": "seed for the eigenbasis and inits"})

    def __post_init__(self) -> None:
        p = len(self.singular_values)
        check(p >= 2, "singular_values", "needs at least 2 values")
        check(all(s > 0 for s in self.singular_values), "singular_values", "must be > 0")
        check(
            list(self.singular_values) == sorted(self.singular_values, reverse=True),
            "singular_values",
            "must be non-increasing",
        )
        check(1 <= self.rank < p, "rank", f"must be in [1, {p - 1}], got {self.rank}")
        for key in ("enc_bounds", "dec_bounds"):
            check(
                len(getattr(self, key)) >= 1 and all(v > 0 for v in getattr(self, key)),
                key,
                "must list positive bounds",
            )
        check(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        check(self.restarts >= 1, "restarts", f"must be >= 1, got {self.restarts}")


def second_moment(cfg: LinearAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """S = U diag(sv^2) U^T in a random orthonormal basis U; returns (S `(p, p)`, lam `(p,)`)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    p = len(cfg.singular_values)
    u, _ = torch.linalg.qr(torch.randn(p, p, generator=gen, dtype=torch.float64))
    lam = torch.tensor(cfg.singular_values, dtype=torch.float64).square()
    return u @ torch.diag(lam) @ u.T, lam


def waterfill(lam_top: torch.Tensor, c: float) -> torch.Tensor:
    """m_i = max(0, 1 - tau / lam_i) with sum m_i = c (all ones if c >= k); `lam_top` descending."""
    k = len(lam_top)
    if c >= k:
        return torch.ones_like(lam_top)
    # With r active components: sum_{i<=r} (1 - tau / lam_i) = c  ->  tau = (r - c) / sum 1/lam_i;
    # the right r is the largest whose tau keeps component r active (tau < lam_r).
    for r in range(k, 0, -1):
        tau = (r - c) / (1.0 / lam_top[:r]).sum()
        if tau < lam_top[r - 1]:
            m = (1 - tau / lam_top).clamp_min(0)
            m[r:] = 0
            return m
    raise AssertionError("unreachable: r = 1 always satisfies tau < lam_1 for c > 0")


def closed_form(lam: torch.Tensor, k: int, a: float, b: float, norm: str) -> dict[str, float]:
    """Optimal error, PCA's error, and how many principal components the optimum keeps."""
    c = a * b
    top, tail = lam[:k], lam[k:].sum().item()
    m = torch.full_like(top, min(c, 1.0)) if norm == "spectral" else waterfill(top, c)
    error = (top * (1 - m).square()).sum().item() + tail
    return {
        "error": error,
        "pca_error": tail,
        "excess": error - tail,
        "components": int((m > 0).sum().item()),
    }


def _project(w: torch.Tensor, bound: torch.Tensor, norm: str) -> None:
    """Project each matrix of the batch `(G, m, n)` onto its own norm ball `bound (G,)`."""
    if norm == "spectral":
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        w.copy_(u @ torch.diag_embed(torch.minimum(s, bound[:, None])) @ vh)
    else:
        scale = (bound / torch.linalg.matrix_norm(w).clamp_min(1e-30)).clamp(max=1.0)
        w.mul_(scale[:, None, None])


def train_grid(cfg: LinearAEConfig) -> dict[str, Any]:
    """Train every (a, b, restart) at once; return errors, closed forms and recovered subspaces."""
    sigma, lam = second_moment(cfg)
    p, k = len(lam), cfg.rank
    grid = [(a, b) for b in cfg.dec_bounds for a in cfg.enc_bounds]
    n = len(grid) * cfg.restarts
    a_bound = torch.tensor([a for a, _ in grid for _ in range(cfg.restarts)], dtype=torch.float64)
    b_bound = torch.tensor([b for _, b in grid for _ in range(cfg.restarts)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    # Train E = a * E1, D = b * D1 with ||E1||, ||D1|| <= 1: the same problem, but Adam's step is
    # then relative to each cell's bound, so cells with a = 0.1 and a = 10 converge alike.
    enc1 = (0.1 * torch.randn(n, k, p, generator=gen, dtype=torch.float64)).requires_grad_()
    dec1 = (0.1 * torch.randn(n, p, k, generator=gen, dtype=torch.float64)).requires_grad_()
    ones = torch.ones(n, dtype=torch.float64)
    eye = torch.eye(p, dtype=torch.float64)
    # Plain projected gradient descent (heavy-ball momentum): unlike projected Adam, whose
    # per-coordinate scaling breaks the link between fixed points and KKT points, its fixed points
    # are exactly the constrained stationary points. The step is 1 / (gradient Lipschitz constant),
    # which for cell c = a * b scales like lam_1 * c (at the optimum the scaled factors have
    # norm ~ min(1, c^-1/2), so the c^2 of the raw Hessian is tempered to c).
    c = a_bound * b_bound
    step = (cfg.lr / (lam[0] * c))[:, None, None]
    vel_e, vel_d = torch.zeros_like(enc1), torch.zeros_like(dec1)

    def errors() -> torch.Tensor:
        dec, enc = b_bound[:, None, None] * dec1, a_bound[:, None, None] * enc1
        resid = eye - dec @ enc  # (n, p, p)
        return (resid @ sigma * resid).sum((-2, -1))  # tr(R S R^T) per grid point

    for _ in range(cfg.steps):
        g_e, g_d = torch.autograd.grad(errors().sum(), [enc1, dec1])
        with torch.no_grad():
            vel_e.mul_(0.9).add_(g_e)
            vel_d.mul_(0.9).add_(g_d)
            enc1.sub_(step * vel_e)
            dec1.sub_(step * vel_d)
            _project(enc1, ones, cfg.norm)
            _project(dec1, ones, cfg.norm)
    with torch.no_grad():
        err = errors().view(len(grid), cfg.restarts)
        best = err.argmin(1)
        maps = (b_bound[:, None, None] * dec1 @ (a_bound[:, None, None] * enc1)).view(
            len(grid), cfg.restarts, p, p
        )[torch.arange(len(grid)), best]
    _, eigvec = torch.linalg.eigh(sigma)
    top = eigvec.flip(-1)[:, :k]  # (p, k) top-k principal directions
    cells = []
    for i, (a, b) in enumerate(grid):
        theory = closed_form(lam, k, a, b, cfg.norm)
        svals = torch.linalg.svdvals(maps[i])
        # Subspace check: how much of the map's output lies in the top-k principal subspace.
        in_top = (top.T @ maps[i]).norm() / maps[i].norm().clamp_min(1e-30)
        cells.append(
            {
                "a": a,
                "b": b,
                "error": err[i, best[i]].item(),
                **{f"theory_{key}": v for key, v in theory.items()},
                "components": int((svals > 1e-3 * max(svals[0].item(), 1e-12)).sum().item()),
                "top_subspace_fraction": in_top.item(),
            }
        )
    return {"config_norm": cfg.norm, "rank": k, "eigenvalues": lam.tolist(), "cells": cells}
