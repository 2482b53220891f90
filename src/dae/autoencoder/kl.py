"""KL autoencoder (latent diffusion's AutoencoderKL): diagonal Gaussian latent, diffusers trunk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from dae.autoencoder.image import (
    ImageArchConfig,
    ImageAutoencoder,
    build_encoder,
    build_image_decoder,
    diffusers_trunk,
)
from dae.config import check


@dataclass
class KLAutoencoderConfig(ImageArchConfig):
    z_channels: int = field(default=4, metadata={"help": "latent channels"})
    scaling_factor: float | None = field(
        default=None,
        metadata={"help": "1 / std of encoded training latents; measured after training, not set"},
    )
    scaling_images: int = field(
        default=1024, metadata={"help": "training images encoded to measure scaling_factor"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.scaling_factor is None or self.scaling_factor > 0,
            "scaling_factor",
            f"must be > 0 (or unset), got {self.scaling_factor}",
        )


class KLOutput(NamedTuple):
    sample: torch.Tensor  # (B, C, H, W)
    mean: torch.Tensor  # (B, z, h, w)
    logvar: torch.Tensor  # (B, z, h, w), clamped to [-30, 20] as in diffusers
    kl: torch.Tensor  # (B,) KL(q(z|x) || N(0, I)) summed over latent elements


class KLAutoencoder(ImageAutoencoder):
    """`x (B, C, H, W) -> q(z|x) = N(mean, exp(logvar)) (B, z, H/f, W/f) -> x_hat`."""

    diffusers_cls = AutoencoderKL
    kind = "gaussian"

    def __init__(self, cfg: KLAutoencoderConfig):
        super().__init__(cfg)
        self.encoder = build_encoder(cfg, double_z=True)
        self.quant_conv = torch.nn.Conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, 1)
        self.post_quant_conv = torch.nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)
        self.decoder = build_image_decoder(cfg)

    def encoder_modules(self) -> list[torch.nn.Module]:
        return [self.encoder, self.quant_conv]

    def bottleneck_channels(self) -> int:
        return self.cfg.z_channels

    def encode(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        """(B, C, H, W) -> posterior over (B, z, h, w); `.mean`, `.logvar`, `.sample()`, `.kl()`."""
        moments = self.quant_conv(self.encoder(x)).float()  # KL and sampling in fp32
        return DiagonalGaussianDistribution(moments)

    @property
    def scaling_factor(self) -> float | None:
        return self.cfg.scaling_factor

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar), each (B, z, h, w)."""
        dist = self.encode(x)
        return dist.mean, dist.logvar

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).mean

    def forward(self, x: torch.Tensor, sample_posterior: bool = True) -> KLOutput:
        posterior = self.encode(x)
        z = posterior.sample() if sample_posterior else posterior.mode()
        return KLOutput(self.decode(z), posterior.mean, posterior.logvar, posterior.kl())

    @torch.no_grad()
    def measure_scaling_factor(self, batches: list[torch.Tensor]) -> float:
        """1 / std of posterior samples of `batches` (LDM's recipe, Rombach et al. 2022, D.1)."""
        samples = torch.cat([self.encode(x).sample().flatten() for x in batches])
        return float(1.0 / samples.std())

    def diffusers_config(self) -> dict[str, Any]:
        """`diffusers.AutoencoderKL` constructor arguments for the same network."""
        cfg = self.cfg
        return {
            "in_channels": cfg.in_channels,
            "out_channels": cfg.in_channels,
            **diffusers_trunk(cfg),
            "latent_channels": cfg.z_channels,
            "sample_size": cfg.resolution,
            "scaling_factor": cfg.scaling_factor if cfg.scaling_factor is not None else 1.0,
        }
