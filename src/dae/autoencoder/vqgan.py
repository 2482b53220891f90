"""VQGAN (Esser et al. 2021): diffusers Encoder -> 1x1 conv -> codebook -> 1x1 conv -> Decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from diffusers import VQModel

from dae.autoencoder.image import (
    ImageArchConfig,
    ImageAutoencoder,
    build_encoder,
    build_image_decoder,
    diffusers_trunk,
)
from dae.autoencoder.quantizers import QUANTIZERS, Quantized, Quantizer, codebook_size
from dae.config import ConfigError, check
from dae.losses.vq import VQLosses

__all__ = ["VQGAN", "VQGANConfig", "Quantized", "Quantizer"]


@dataclass
class VQGANConfig(ImageArchConfig):
    quantizer: Literal["vq", "vq-l2", "fsq", "lfq"] = field(
        default="vq",
        metadata={
            "help": "vq: nearest codebook row; vq-l2: l2-normalised codes (cosine lookup); "
            "fsq: finite scalar quantisation (fsq_levels); lfq: lookup-free, 2^embed_dim codes"
        },
    )
    n_embed: int = field(default=1024, metadata={"help": "codebook size (vq, vq-l2)"})
    embed_dim: int = field(
        default=256,
        metadata={"help": "code vector dimension (fsq: len(fsq_levels); lfq: bits per code)"},
    )
    beta: float = field(
        default=0.25, metadata={"help": "commitment weight (on the encoder term; vq, vq-l2, lfq)"}
    )
    fsq_levels: list[int] = field(
        default_factory=lambda: [8, 5, 5, 5],
        metadata={"help": "fsq: values per channel (Mentzer et al.'s 1,000-code grid)"},
    )
    lfq_entropy_weight: float = field(default=0.1, metadata={"help": "lfq: entropy loss weight"})
    lfq_diversity_gamma: float = field(
        default=1.0, metadata={"help": "lfq: weight of the batch (code diversity) entropy"}
    )
    legacy_commitment: bool = field(
        default=False,
        metadata={"help": "taming's swapped form: beta on the codebook term (only for comparison)"},
    )
    restart_dead_codes: int = field(
        default=0,
        metadata={
            "help": "every N training forwards, move codes unused in that window onto random "
            "encoder outputs of the batch (0: off, the taming recipe)"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_embed >= 2, "n_embed", f"must be >= 2, got {self.n_embed}")
        check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        check(self.beta >= 0, "beta", f"must be >= 0, got {self.beta}")
        check(self.restart_dead_codes >= 0, "restart_dead_codes", "must be >= 0 (0 disables)")
        codebook = self.quantizer in ("vq", "vq-l2")
        check(
            codebook or not self.restart_dead_codes,
            "restart_dead_codes",
            f"only vq and vq-l2 have a codebook to restart, not {self.quantizer}",
        )
        if self.quantizer == "fsq":
            check(
                len(self.fsq_levels) >= 1 and min(self.fsq_levels) >= 3,
                "fsq_levels",
                f"every level must be >= 3, got {self.fsq_levels}",
            )
            check(
                self.embed_dim == len(self.fsq_levels),
                "embed_dim",
                f"fsq quantises one channel per level: set it to {len(self.fsq_levels)}, "
                f"got {self.embed_dim}",
            )
        if self.quantizer == "lfq":
            # the entropy loss compares every position with all 2^embed_dim codes
            check(self.embed_dim <= 16, "embed_dim", f"lfq: at most 16 bits, got {self.embed_dim}")

    @property
    def codebook_size(self) -> int:
        """Number of codes (n_embed; the grid size for fsq; 2^embed_dim for lfq)."""
        return codebook_size(self)


class VQGANOutput(NamedTuple):
    sample: torch.Tensor  # (B, C, H, W) reconstruction
    indices: torch.Tensor  # (B, h, w)
    vq: VQLosses
    latent: torch.Tensor  # (B, embed_dim, h, w) the quantised latent the decoder read


class VQGAN(ImageAutoencoder):
    """`x (B, C, H, W) -> z (B, z, H/f, W/f) -> codes (B, H/f, W/f) -> x_hat (B, C, H, W)`."""

    diffusers_cls = VQModel
    kind = "vq"

    def __init__(self, cfg: VQGANConfig):
        super().__init__(cfg)
        self.encoder = build_encoder(cfg, double_z=False)
        self.quant_conv = torch.nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantize = QUANTIZERS[cfg.quantizer](cfg)
        self.post_quant_conv = torch.nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.decoder = build_image_decoder(cfg)

    def encoder_modules(self) -> list[torch.nn.Module]:
        return [self.encoder, self.quant_conv, self.quantize]

    def bottleneck_channels(self) -> int:
        return self.cfg.embed_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, embed_dim, h, w) continuous pre-quantisation latent."""
        return self.quant_conv(self.encoder(x))

    def encode_to_indices(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, h, w) code indices."""
        return self.quantize.nearest(self.encode(x))

    @property
    def codebook(self) -> torch.Tensor:
        """(codebook_size, embed_dim) every code's vector (implicit for fsq and lfq)."""
        return self.quantize.codebook()

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, embed_dim, h, w) code vectors of the nearest codes."""
        return self.quantize.lookup(self.encode_to_indices(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) code indices -> (B, C, H, W)."""
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: torch.Tensor) -> VQGANOutput:
        q = self.quantize.quantize(self.encode(x))
        return VQGANOutput(self.decode(q.z_q), q.indices, q.losses, q.z_q)

    def to_diffusers(self) -> torch.nn.Module:
        target = super().to_diffusers()
        if self.cfg.quantizer == "vq-l2":
            # VQModel's Euclidean search over unit-norm rows picks the highest-cosine code, and
            # decodes the unit-norm row: the same network once the codebook is stored normalised
            with torch.no_grad():
                target.quantize.embedding.weight.copy_(self.quantize.codebook())
        return target

    def diffusers_config(self) -> dict[str, Any]:
        """`diffusers.VQModel` constructor arguments for the same network."""
        cfg = self.cfg
        if cfg.quantizer not in ("vq", "vq-l2"):
            raise ConfigError(
                "model.quantizer",
                f"{cfg.quantizer} has no codebook matrix diffusers' VQModel can hold; only vq and "
                "vq-l2 export to diffusers (the run's model.safetensors is dae's format)",
            )
        return {
            "in_channels": cfg.in_channels,
            "out_channels": cfg.in_channels,
            **diffusers_trunk(cfg),
            "latent_channels": cfg.z_channels,
            "sample_size": cfg.resolution,
            "num_vq_embeddings": cfg.n_embed,
            "vq_embed_dim": cfg.embed_dim,
        }
