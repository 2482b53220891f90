"""DCGAN at 32x32 and the autoencoding GANs built on it (paper Sec. 6.2, Table 2 right).

    DCGAN         z ~ N(0, I) ---------------------------> Generator -> x_fake
    VAEGAN        x -> ConvEncoder -> (mu, logvar) -> z -> Generator -> x_rec
    DCGAN-SimCLR  x -> frozen SimCLR backbone -> z ------> Generator -> x_rec

The generator is the decoder, so `build_decoder(0.5)` is the same generator with half the
convolution widths and the DAE schedule drives a VAEGAN unchanged (DAE-VAEGAN). The discriminator
is not part of the autoencoder: the task owns it (it is reset when stage 2 starts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from dae.autoencoder.base import DecoupledAutoencoder
from dae.config import check


@dataclass
class DCGANConfig:
    latent_dim: int = field(default=100, metadata={"help": "generator input / encoder output size"})
    gen_width: int = field(default=64, metadata={"help": "generator channels at 32x32 (x8 at 4x4)"})
    disc_width: int = field(default=64, metadata={"help": "discriminator channels at 16x16"})
    enc_width: int = field(default=64, metadata={"help": "encoder channels at 32x32"})
    channels: int = field(default=3, metadata={"help": "image channels"})

    def __post_init__(self) -> None:
        for key in ("latent_dim", "gen_width", "disc_width", "enc_width", "channels"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")


def _up(c_in: int, c_out: int) -> list[nn.Module]:
    """x2 upsampling block; the Dropout2d slot is off unless the `dropout2d` weak decoder is used."""
    return [
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(True),
        nn.Dropout2d(0.0),
    ]


class Generator(nn.Sequential):
    """Five convolutions: `z (B, d) -> (B, 8w, 4, 4) -> 8 -> 16 -> (B, w, 32, 32) -> (B, C, 32, 32)`."""

    def __init__(self, latent_dim: int, width: int, channels: int = 3):
        w = max(1, width)
        super().__init__(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 8 * w, 4, 1, 0, bias=False),  # 1x1 -> 4x4
            nn.BatchNorm2d(8 * w),
            nn.ReLU(True),
            nn.Dropout2d(0.0),
            *_up(8 * w, 4 * w),  # 4 -> 8
            *_up(4 * w, 2 * w),  # 8 -> 16
            *_up(2 * w, w),  # 16 -> 32
            nn.Conv2d(w, channels, 3, 1, 1),
            nn.Tanh(),
        )


class Discriminator(nn.Module):
    """Four convolutions and a linear layer: `(B, C, 32, 32) -> (B,)` real/fake logits."""

    def __init__(self, width: int, channels: int = 3):
        super().__init__()
        w = width

        def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 4 if stride == 2 else 3, stride, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]

        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),  # 32 -> 16
            nn.LeakyReLU(0.2, True),
            *block(w, 2 * w, 2),  # 16 -> 8
            *block(2 * w, 4 * w, 2),  # 8 -> 4
            *block(4 * w, 8 * w, 1),  # 4 -> 4
            nn.Flatten(),  # (B, 8w * 16)
        )
        self.classify = nn.Linear(8 * w * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x)).squeeze(1)


class ConvEncoder(nn.Sequential):
    """Five convolutions: `(B, C, 32, 32) -> 16 -> 8 -> 4 -> (B, out_dim)`; VAEGAN and SimCLR backbone."""

    def __init__(self, out_dim: int, width: int, channels: int = 3):
        w = width

        def down(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]

        super().__init__(
            nn.Conv2d(channels, w, 3, 1, 1),
            nn.LeakyReLU(0.2, True),
            *down(w, 2 * w),  # 32 -> 16
            *down(2 * w, 4 * w),  # 16 -> 8
            *down(4 * w, 8 * w),  # 8 -> 4
            nn.Conv2d(8 * w, out_dim, 4, 1, 0),  # 4 -> 1
            nn.Flatten(),
        )


class DCGAN(DecoupledAutoencoder):
    """A generator from a standard Gaussian latent; the "decoder" the schedule sees is the generator."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        self.decoder = Generator(cfg.latent_dim, cfg.gen_width, cfg.channels)

    def encoder_modules(self) -> list[nn.Module]:
        return []

    def decoder_modules(self) -> list[nn.Module]:
        return [self.decoder]

    def build_decoder(self, width_factor: float) -> nn.Module:
        width = max(1, round(self.cfg.gen_width * width_factor))
        return Generator(self.cfg.latent_dim, width, self.cfg.channels)

    def decode_full(self, z: torch.Tensor) -> torch.Tensor:
        """`(B, latent_dim) -> (B, C, 32, 32)` in [-1, 1]."""
        return self.decoder(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` images decoded from the standard Gaussian prior."""
        device = next(self.decoder.parameters()).device
        z = torch.randn(n, self.cfg.latent_dim, generator=generator).to(device)
        return self.decode(z)


class VAEGAN(DCGAN):
    """A VAE whose decoder is the DCGAN generator (trained with an adversarial term as well)."""

    kind = "gaussian"

    def __init__(self, cfg: DCGANConfig):
        super().__init__(cfg)
        self.encoder = ConvEncoder(2 * cfg.latent_dim, cfg.enc_width, cfg.channels)

    def encoder_modules(self) -> list[nn.Module]:
        return [self.encoder]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each `(B, latent_dim)`."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    posterior = encode

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The code a reconstruction is decoded from (the posterior mean)."""
        return self.encode(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.latent(x))


class SimCLRGAN(DCGAN):
    """DCGAN-SimCLR: the generator decodes the (frozen) SimCLR feature of an image.

    The SimCLR backbone is not an encoder module, so no schedule ever trains it; `train()` keeps it
    in eval mode so its BatchNorm statistics stay those SimCLR learned.
    """

    def __init__(self, cfg: DCGANConfig, backbone: nn.Module):
        super().__init__(cfg)
        self.encoder = backbone.requires_grad_(False).eval()

    def encoder_modules(self) -> list[nn.Module]:
        return []

    def train(self, mode: bool = True) -> SimCLRGAN:
        super().train(mode)
        self.encoder.eval()
        return self

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The SimCLR feature, rescaled to norm sqrt(d) like a standard Gaussian sample: `(B, d)`."""
        with torch.no_grad():
            h = self.encoder(x)
        return nn.functional.normalize(h, dim=1) * self.cfg.latent_dim**0.5

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.latent(x))
