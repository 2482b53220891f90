"""Complexity-constrained generator families, batched over independent restarts.

Two ways to bound a generator's complexity (the `c` of the paper's eq. 3.1), picked by config:

- `width`:     G(z) = b + A z + MLP_w(z), `depth` ReLU hidden layers of width `w` = c; c = 0 is the
               affine family. The affine skip makes identity-like maps available at every c, so
               a latent that already equals the data reads ~0 everywhere.
- `lipschitz`: G(z) = b + c * (lam * S z + (1 - lam) * MLP(z)), lam in [0, 1], with every matrix
               (S and the MLP's) projected onto the spectral-norm ball of radius 1 after each step.
               ReLU is 1-Lipschitz, so Lip(G) <= c * (lam + (1 - lam)) = c exactly as a bound.

All restarts train at once: weights carry a leading restart axis `(R, in, out)` and layers are
batched matmuls, which on a 2-core CPU is several times faster than looping over restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dae.config import check


@dataclass
class GeneratorConfig:
    family: Literal["width", "lipschitz"] = field(
        default="width",
        metadata={"help": "width: c = hidden width; lipschitz: c = Lipschitz bound"},
    )
    ladder: list[float] = field(
        default_factory=lambda: [0, 2, 4, 8, 16, 32, 64],
        metadata={"help": "complexities c to try, increasing (widths, or Lipschitz bounds)"},
    )
    depth: int = field(default=2, metadata={"help": "ReLU hidden layers"})
    width: int = field(default=64, metadata={"help": "hidden width of the lipschitz family"})

    def __post_init__(self) -> None:
        check(len(self.ladder) >= 1, "ladder", "must list at least one complexity")
        check(
            all(a < b for a, b in zip(self.ladder, self.ladder[1:], strict=False)),
            "ladder",
            f"must be strictly increasing, got {self.ladder}",
        )
        check(self.depth >= 1, "depth", f"must be >= 1, got {self.depth}")
        check(self.width >= 1, "width", f"must be >= 1, got {self.width}")
        if self.family == "width":
            check(
                all(float(c).is_integer() and c >= 0 for c in self.ladder),
                "ladder",
                f"width family needs integer widths >= 0, got {self.ladder}",
            )
        else:
            check(
                all(c > 0 for c in self.ladder),
                "ladder",
                f"lipschitz family needs bounds > 0, got {self.ladder}",
            )


@torch.no_grad()
def project_spectral_(weight: torch.Tensor, bound: float) -> torch.Tensor:
    """Euclidean projection onto {W : ||W||_2 <= bound}, in place: clip singular values.

    Works on a batch `(..., m, n)`. Clipping (not rescaling) is the exact projection in Frobenius
    distance, which is what projected gradient descent needs.
    """
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    weight.copy_(u @ torch.diag_embed(s.clamp(max=bound)) @ vh)
    return weight


def _batched_linear(restarts: int, d_in: int, d_out: int, gain: float, gen: torch.Generator):
    w = torch.randn(restarts, d_in, d_out, generator=gen) * (gain / math.sqrt(d_in))
    return nn.Parameter(w)


class BatchedGenerator(nn.Module):
    """R independent generators `z (N, d) or (R, N, d) -> (R, N, D)` of one family and complexity."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        complexity: float,
        d_in: int,
        d_out: int,
        restarts: int,
        seed: int,
    ):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.family, self.complexity, self.restarts = cfg.family, float(complexity), restarts
        width = int(complexity) if cfg.family == "width" else cfg.width
        dims = [d_in] + [width] * cfg.depth if width > 0 else [d_in]
        # Hidden layers: weights (R, in, out), biases (R, 1, out); ReLU gain keeps activations O(1).
        self.weights = nn.ParameterList(
            _batched_linear(restarts, a, b, math.sqrt(2), gen)
            for a, b in zip(dims, dims[1:], strict=False)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(restarts, 1, b)) for b in dims[1:])
        self.head = _batched_linear(restarts, dims[-1], d_out, 1.0, gen) if width > 0 else None
        self.skip = _batched_linear(restarts, d_in, d_out, 1.0, gen)
        self.bias = nn.Parameter(torch.zeros(restarts, 1, d_out))
        # Mixing weight between the linear skip and the MLP (lipschitz family only).
        self.mix = nn.Parameter(torch.full((restarts, 1, 1), 0.5))
        self.project_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z.expand(self.restarts, *z.shape)  # (N, d) -> (R, N, d), shared latent sample
        linear = torch.bmm(z, self.skip)
        if self.head is None:
            return self.bias + linear
        h = z
        for w, b in zip(self.weights, self.biases, strict=False):
            h = torch.relu(torch.baddbmm(b, h, w))
        mlp = torch.bmm(h, self.head)
        if self.family == "width":
            return self.bias + linear + mlp
        return self.bias + self.complexity * (self.mix * linear + (1 - self.mix) * mlp)

    @torch.no_grad()
    def project_(self) -> None:
        """Restore the complexity constraint after an optimiser step (no-op for `width`)."""
        if self.family != "lipschitz":
            return
        for w in [self.skip, *self.weights, *([self.head] if self.head is not None else [])]:
            # Stored as (R, in, out); the map is h @ W, whose norm equals that of W^T.
            project_spectral_(w.data, 1.0)
        self.mix.data.clamp_(0.0, 1.0)

    def lipschitz_bound(self) -> torch.Tensor:
        """Per restart, the layer-norm product bound on Lip(G) `(R,)` (lipschitz: <= c by design)."""
        norms = lambda w: torch.linalg.matrix_norm(w, ord=2)  # noqa: E731
        mlp = torch.ones(self.restarts)
        if self.head is not None:
            for w in [*self.weights, self.head]:
                mlp = mlp * norms(w)
        if self.family == "width":
            return norms(self.skip) + (mlp if self.head is not None else 0.0)
        lam = self.mix.view(-1)
        return self.complexity * (lam * norms(self.skip) + (1 - lam) * mlp)
