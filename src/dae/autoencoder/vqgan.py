"""VQGAN (Esser et al. 2021): diffusers Encoder -> 1x1 conv -> codebook -> 1x1 conv -> Decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from diffusers import VQModel
from diffusers.models.autoencoders.vae import VectorQuantizer

from dae.autoencoder.image import (
    ImageArchConfig,
    ImageAutoencoder,
    build_encoder,
    build_image_decoder,
    diffusers_trunk,
)
from dae.config import check
from dae.losses.vq import VQLosses, vq_losses


@dataclass
class VQGANConfig(ImageArchConfig):
    n_embed: int = field(default=1024, metadata={"help": "codebook size"})
    embed_dim: int = field(default=256, metadata={"help": "codebook vector dimension"})
    beta: float = field(default=0.25, metadata={"help": "commitment weight (on the encoder term)"})
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


class Quantized(NamedTuple):
    z_q: (
        torch.Tensor
    )  # (B, D, h, w), straight-through: forward = codebook rows, backward = identity
    indices: torch.Tensor  # (B, h, w) long
    losses: VQLosses


class Quantizer(VectorQuantizer):
    """diffusers' `VectorQuantizer` (same `embedding` parameter) with the correct commitment form
    and a nearest-neighbour search that always runs in fp32, also under bf16/fp16 autocast.

    The codebook learns by gradient and, if `restart_every > 0`, by dead-code restarts: codes
    no training batch picked in the last `restart_every` forwards are moved onto random encoder
    outputs (as in Jukebox / SoundStream). diffusers' tiny uniform(-1/K, 1/K) initialisation
    otherwise leaves most codes far from every encoder output, and small CIFAR-10 VQGANs use
    ~15 of 512 codes (docs/results.md). Restarts happen only in training mode with a codebook
    that requires grad, so a frozen quantizer (DAE stage 2, `requires_grad_(False)`) cannot change.
    """

    def __init__(
        self, n_e: int, dim: int, beta: float = 0.25, legacy: bool = False, restart_every: int = 0
    ):
        super().__init__(n_e, dim, beta=beta, remap=None, sane_index_shape=True, legacy=legacy)
        self.restart_every = restart_every
        self.restarted = 0  # codes moved by the last restart (for the logs)
        if restart_every:
            # buffers, so that an exact resume continues the same window
            self.register_buffer("code_usage", torch.zeros(n_e))
            self.register_buffer("usage_clock", torch.zeros((), dtype=torch.long))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, h, w) index of the closest codebook row (Euclidean, fp32)."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B, D, h, w) -> (Bhw, D)
        with torch.autocast(z.device.type, enabled=False):
            # the same `cdist` as diffusers' VQModel, so exported models pick the same codes
            dist = torch.cdist(flat.float(), self.embedding.weight.float())
        return dist.argmin(1).view(b, h, w)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w) codebook rows."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _track_and_restart(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Count the codes this batch picked; at the end of a window, restart the unused ones."""
        self.code_usage += torch.bincount(indices.flatten(), minlength=self.n_e).to(self.code_usage)
        self.usage_clock += 1
        self.restarted = 0
        if int(self.usage_clock) % self.restart_every:
            return
        usage = self.code_usage.clone()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed:  # every rank must see the same dead set and move it to the same vectors
            torch.distributed.all_reduce(usage)
        dead = (usage == 0).nonzero().squeeze(1)
        if len(dead):
            flat = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()
            pick = torch.randint(0, len(flat), (len(dead),), device=flat.device)
            new = flat[pick]
            if distributed:
                torch.distributed.broadcast(new, 0)
            self.embedding.weight[dead] = new.to(self.embedding.weight.dtype)
            self.restarted = len(dead)
        self.code_usage.zero_()

    def quantize(self, z: torch.Tensor) -> Quantized:
        indices = self.nearest(z)
        if self.restart_every and self.training and self.embedding.weight.requires_grad:
            self._track_and_restart(z, indices)
        z = z.float()
        z_q = self.lookup(indices)
        losses = vq_losses(z, z_q, self.beta, self.legacy)
        # contiguous like diffusers' output: the next conv's kernel (and its rounding) depends on it
        return Quantized((z + (z_q - z).detach()).contiguous(), indices, losses)

    def forward(
        self, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[Any, Any, torch.Tensor]]:
        """diffusers' return convention: (z_q, loss, (perplexity, encodings, indices))."""
        q = self.quantize(z)
        return q.z_q, q.losses.total, (None, None, q.indices)


class VQGANOutput(NamedTuple):
    sample: torch.Tensor  # (B, C, H, W) reconstruction
    indices: torch.Tensor  # (B, h, w)
    vq: VQLosses


class VQGAN(ImageAutoencoder):
    """`x (B, C, H, W) -> z (B, z, H/f, W/f) -> codes (B, H/f, W/f) -> x_hat (B, C, H, W)`."""

    diffusers_cls = VQModel
    kind = "vq"

    def __init__(self, cfg: VQGANConfig):
        super().__init__(cfg)
        self.encoder = build_encoder(cfg, double_z=False)
        self.quant_conv = torch.nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.quantize = Quantizer(
            cfg.n_embed, cfg.embed_dim, cfg.beta, cfg.legacy_commitment, cfg.restart_dead_codes
        )
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
        """(n_embed, embed_dim) code vectors."""
        return self.quantize.embedding.weight

    @torch.no_grad()
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, embed_dim, h, w) code vectors of the nearest codes."""
        return self.quantize.lookup(self.encode_to_indices(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) code indices -> (B, C, H, W)."""
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: torch.Tensor) -> VQGANOutput:
        q = self.quantize.quantize(self.encode(x))
        return VQGANOutput(self.decode(q.z_q), q.indices, q.losses)

    def diffusers_config(self) -> dict[str, Any]:
        """`diffusers.VQModel` constructor arguments for the same network."""
        cfg = self.cfg
        return {
            "in_channels": cfg.in_channels,
            "out_channels": cfg.in_channels,
            **diffusers_trunk(cfg),
            "latent_channels": cfg.z_channels,
            "sample_size": cfg.resolution,
            "num_vq_embeddings": cfg.n_embed,
            "vq_embed_dim": cfg.embed_dim,
        }
