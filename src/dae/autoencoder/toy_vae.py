"""The toy's vanilla VAE: 3-layer fully connected encoder and decoder, a 2-D Gaussian latent."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.config import check


@dataclass
class ToyVAEConfig:
    data_dim: int = field(default=10, metadata={"help": "input/output dimension"})
    latent_dim: int = field(default=2, metadata={"help": "latent dimension"})
    enc_hidden: int = field(default=128, metadata={"help": "encoder hidden width"})
    dec_hidden: int = field(default=128, metadata={"help": "decoder hidden width"})
    beta: float = field(default=1.0, metadata={"help": "weight of the KL term"})
    recon_std: float = field(
        default=1.0,
        metadata={"help": "std of the Gaussian likelihood p(x|z); 1.0 is the textbook VAE"},
    )

    def __post_init__(self) -> None:
        for key in ("data_dim", "latent_dim", "enc_hidden", "dec_hidden"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.recon_std > 0, "recon_std", f"must be > 0, got {self.recon_std}")


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """3 linear layers; each hidden activation is followed by a (default inactive) dropout slot,
    which the DAE schedule's `dropout2d` weak decoder switches on."""
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(hidden, d_out),
    )


class ToyVAE(DecoupledAutoencoder):
    """Vanilla VAE, `x (B, D) -> (mu, logvar) (B, d) -> x_hat (B, D)`."""

    kind = "gaussian"
    dropout_cls = nn.Dropout  # a hidden unit is an MLP's "channel"

    def __init__(self, cfg: ToyVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = mlp(cfg.data_dim, cfg.enc_hidden, 2 * cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim, cfg.dec_hidden, cfg.data_dim)

    def encoder_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def decoder_modules(self) -> list[nn.Module]:
        return [self.decoder]

    def build_decoder(self, width_factor: float) -> nn.Module:
        width = max(1, round(self.cfg.dec_hidden * width_factor))
        return mlp(self.cfg.latent_dim, width, self.cfg.data_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each `(B, latent_dim)`."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    posterior = encode

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]

    def decode_full(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decode(z), mu, logvar

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO per example: Gaussian reconstruction term + beta * KL(q(z|x) || N(0, I))."""
        x_hat, mu, logvar = self(x)
        recon = ((x_hat - x) ** 2).sum(1).mean() / (2 * self.cfg.recon_std**2)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1).mean()
        total = recon + self.cfg.beta * kl
        return total, {"loss": total.item(), "recon": recon.item(), "kl": kl.item()}
