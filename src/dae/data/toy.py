"""The toy of the paper's Section 6.1: 8 Gaussian clusters on the unit circle, lifted to 10-D."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from dae.config import check


@dataclass
class ToyDataConfig:
    n_clusters: int = field(default=8, metadata={"help": "clusters, centres evenly on the circle"})
    dim: int = field(default=10, metadata={"help": "ambient dimension of the orthogonal lift"})
    radius: float = field(default=1.0, metadata={"help": "radius of the circle of centres"})
    std: float = field(
        default=0.1,
        metadata={"help": "per-coordinate standard deviation of each cluster (see docs/toy.md)"},
    )
    n_train: int = field(default=8000, metadata={"help": "training points"})
    n_test: int = field(default=2000, metadata={"help": "held-out points for the accuracies"})

    def __post_init__(self) -> None:
        check(self.n_clusters >= 2, "n_clusters", f"must be >= 2, got {self.n_clusters}")
        check(self.dim >= 2, "dim", f"must be >= 2, got {self.dim}")
        check(self.std > 0, "std", f"must be > 0, got {self.std}")
        check(self.radius > 0, "radius", f"must be > 0, got {self.radius}")
        check(self.n_train >= 1, "n_train", f"must be >= 1, got {self.n_train}")
        check(self.n_test >= 1, "n_test", f"must be >= 1, got {self.n_test}")


@dataclass
class ToyData:
    """Train/test points `(N, dim)`, their cluster labels `(N,)`, and the lift `(2, dim)`."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    lift: torch.Tensor


def cluster_centres(n_clusters: int, radius: float = 1.0) -> torch.Tensor:
    """`(K, 2)` centres evenly spaced on a circle."""
    angles = torch.arange(n_clusters, dtype=torch.float64) * (2 * math.pi / n_clusters)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def make_toy_data(cfg: ToyDataConfig, seed: int) -> ToyData:
    """Sample the mixture in 2-D (isotropic noise of std `cfg.std`), then lift by an orthogonal map."""
    gen = torch.Generator().manual_seed(seed)
    # A random orthonormal 2-frame in R^dim: QR of a Gaussian matrix.
    q, _ = torch.linalg.qr(torch.randn(cfg.dim, 2, generator=gen, dtype=torch.float64))
    lift = q.T  # (2, dim), orthonormal rows: distances in the plane are preserved
    centres = cluster_centres(cfg.n_clusters, cfg.radius)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(cfg.n_clusters, (n,), generator=gen)
        noise = cfg.std * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        return ((centres[labels] + noise) @ lift).float(), labels  # (n, 2) -> (n, dim)

    x_train, y_train = sample(cfg.n_train)
    x_test, y_test = sample(cfg.n_test)
    return ToyData(x_train, y_train, x_test, y_test, lift.float())
