"""A SimCLR-style embedding of vectors: an MLP encoder trained with NT-Xent on noisy views.

The comparison latent of `dae complexity`: a representation learned without any decoder, of the
same dimension as the VAEs' latents. Views are the input plus isotropic Gaussian noise (the only
augmentation that makes sense for points of a mixture / flattened digits); the loss is applied to a
projection head's output, and the embedding used is the encoder's output before the head, as in
SimCLR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dae.config import check


@dataclass
class ContrastiveConfig:
    hidden: int = field(default=128, metadata={"help": "encoder and head hidden width"})
    head_dim: int = field(default=16, metadata={"help": "projection head output dimension"})
    noise_std: float = field(default=0.25, metadata={"help": "augmentation noise, x units"})
    temperature: float = field(default=0.5, metadata={"help": "NT-Xent temperature"})
    steps: int = field(default=1000, metadata={"help": "Adam steps"})
    batch_size: int = field(default=256, metadata={"help": "pairs per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})

    def __post_init__(self) -> None:
        for key in ("hidden", "head_dim", "steps", "batch_size"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.noise_std >= 0, "noise_std", f"must be >= 0, got {self.noise_std}")
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, d_out),
    )


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for paired views `a, b (B, k)`: each view must pick its twin among 2B - 1."""
    z = F.normalize(torch.cat([a, b]), dim=1)  # (2B, k)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(a)
    twin = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, twin)


def train_contrastive(x: torch.Tensor, dim: int, cfg: ContrastiveConfig, seed: int) -> nn.Module:
    """Train the encoder `x (N, D) -> (N, dim)` and return it in eval mode."""
    torch.manual_seed(seed)
    encoder = _mlp(x.shape[1], cfg.hidden, dim)
    head = _mlp(dim, cfg.hidden, cfg.head_dim)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.steps):
        xb = x[torch.randint(len(x), (cfg.batch_size,), generator=gen)]
        views = [xb + cfg.noise_std * torch.randn(xb.shape, generator=gen) for _ in range(2)]
        loss = nt_xent(head(encoder(views[0])), head(encoder(views[1])), cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return encoder.eval()
