"""The VQGAN bottleneck's quantizers, by name (`model.quantizer`):

    vq     nearest codebook row: diffusers' `VectorQuantizer` (its `embedding` parameter, so the
           model exports to `diffusers.VQModel`), with the commitment form fixed, an fp32 search
           and optional dead-code restarts (dae).
    vq-l2  the same with l2-normalised codes and encoder outputs (LlamaGen / ViT-VQGAN): a cosine
           lookup in a low-dimensional space (`embed_dim`, e.g. 8). The normalisation is dae's,
           a few lines on top of `vq`; it exports to `VQModel` with the codebook stored unit-norm.
    fsq    finite scalar quantisation (Mentzer et al. 2024): `FSQ` of vector-quantize-pytorch.
    lfq    lookup-free quantisation with its entropy loss (MAGVIT-v2): `LFQ` of
           vector-quantize-pytorch.

All four honour one contract, which the model, the metrics and the priors rely on:
`quantize(z) -> Quantized` (straight-through z_q, indices, named losses), `nearest(z) -> indices`,
`lookup(indices) -> z_q`, `codebook() -> (K, D)` every code's vector, and `codebook_size`.
Every search runs in fp32 with autocast off, also under bf16 autocast. None of them changes state
outside a training step that trains it: FSQ and LFQ have no state at all, and vq/vq-l2 restart
codes only in training mode with a codebook that requires grad (DAE stage 2 freezes it).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import VectorQuantizer
from torch import nn

from dae.losses.vq import VQLosses, vq_losses


class Quantized(NamedTuple):
    z_q: (
        torch.Tensor
    )  # (B, D, h, w), straight-through: forward = codebook rows, backward = identity
    indices: torch.Tensor  # (B, h, w) long
    losses: VQLosses


def fp32(z: torch.Tensor) -> torch.autocast:
    """A context with autocast off on `z`'s device: searches and losses stay in fp32."""
    return torch.autocast(z.device.type, enabled=False)


class Quantizer(VectorQuantizer):
    """`vq`: diffusers' `VectorQuantizer` (same `embedding` parameter) with the correct commitment
    form and a nearest-neighbour search that always runs in fp32, also under bf16/fp16 autocast.

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
        self.restarted = 0  # codes moved in the latest forward (the `codes_restarted` log)
        if restart_every:
            # buffers, so that an exact resume continues the same window
            self.register_buffer("code_usage", torch.zeros(n_e))
            self.register_buffer("usage_clock", torch.zeros((), dtype=torch.long))

    @property
    def codebook_size(self) -> int:
        return self.n_e

    def prepare(self, z: torch.Tensor) -> torch.Tensor:
        """The fp32 vectors the search compares (vq-l2 normalises them)."""
        return z.float()

    def codebook(self) -> torch.Tensor:
        """(K, D) the vectors codes decode to."""
        return self.embedding.weight

    def _search(self, z: torch.Tensor) -> torch.Tensor:
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B, D, h, w) -> (Bhw, D)
        # the same `cdist` as diffusers' VQModel, so exported models pick the same codes
        dist = torch.cdist(flat, self.codebook().float())
        return dist.argmin(1).view(b, h, w)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, h, w) index of the closest codebook row (Euclidean, fp32)."""
        with fp32(z):
            return self._search(self.prepare(z))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w) codebook rows."""
        return F.embedding(indices, self.codebook()).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _track_and_restart(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        """Count the codes this batch picked; at the end of a window, restart the unused ones."""
        self.code_usage += torch.bincount(indices.flatten(), minlength=self.n_e).to(self.code_usage)
        self.usage_clock += 1
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
        with fp32(z):
            z = self.prepare(z)
            indices = self._search(z)
            self.restarted = 0  # also when frozen: a stage-2 log must not repeat stage 1's count
            if self.restart_every and self.training and self.embedding.weight.requires_grad:
                self._track_and_restart(z, indices)
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


class L2Quantizer(Quantizer):
    """`vq-l2`: encoder outputs and codes on the unit sphere; nearest = highest cosine.

    Hand-written (two overrides): vector-quantize-pytorch's cosine codebook keeps a different
    state layout, and this form exports to diffusers' `VQModel` unchanged: for unit-norm rows,
    the Euclidean nearest row of an unnormalised `z` is its highest-cosine row.
    """

    def prepare(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z.float(), dim=1)

    def codebook(self) -> torch.Tensor:
        return F.normalize(self.embedding.weight, dim=1)


class _LibraryQuantizer(nn.Module):
    """Base of the vector-quantize-pytorch wrappers: fp32 with autocast off, channel-first."""

    codebook_size: int

    def _run(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, VQLosses]:
        raise NotImplementedError

    def quantize(self, z: torch.Tensor) -> Quantized:
        # the library only switches CUDA autocast off; this covers every device
        with fp32(z):
            z_q, indices, losses = self._run(z.float())
        return Quantized(z_q.contiguous(), indices.long(), losses)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, h, w) code index."""
        with fp32(z), torch.no_grad():
            return self._run(z.float())[1].long()

    def forward(self, z: torch.Tensor) -> Quantized:
        return self.quantize(z)


class FSQQuantizer(_LibraryQuantizer):
    """`fsq`: each of the D = len(levels) channels bounded and rounded to `levels[d]` values; the
    codebook is implicit (the product grid), so there is nothing to collapse and no loss."""

    def __init__(self, levels: list[int]):
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.fsq = FSQ(levels=list(levels))
        self.codebook_size = self.fsq.codebook_size

    def _run(self, z):
        z_q, indices = self.fsq(z)  # channel-first in and out: (B, D, h, w), (B, h, w)
        zero = z.new_zeros(())
        return z_q, indices, VQLosses(zero, zero, zero)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w) grid points."""
        return self.fsq.indices_to_codes(indices)

    def codebook(self) -> torch.Tensor:
        return self.fsq.implicit_codebook


class LFQQuantizer(_LibraryQuantizer):
    """`lfq`: each of the D channels quantised to its sign (2^D implicit codes), trained with the
    entropy loss (confident per-position codes, diverse codes over the batch, averaged over DDP
    ranks by the library) plus `beta` times the commitment loss."""

    def __init__(self, dim: int, beta: float, entropy_weight: float, diversity_gamma: float):
        super().__init__()
        from vector_quantize_pytorch import LFQ

        self.lfq = LFQ(
            dim=dim,
            codebook_size=2**dim,
            entropy_loss_weight=entropy_weight,
            commitment_loss_weight=beta,
            diversity_gamma=diversity_gamma,
        )
        self.codebook_size = 2**dim

    def _run(self, z):
        (z_q, indices, total), parts = self.lfq(z, return_loss_breakdown=True)
        entropy = parts.per_sample_entropy - self.lfq.diversity_gamma * parts.batch_entropy
        return z_q, indices, VQLosses(total, z.new_zeros(()), parts.commitment, entropy)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long -> (B, D, h, w) sign vectors."""
        return self.lfq.indices_to_codes(indices)

    def codebook(self) -> torch.Tensor:
        return self.lfq.codebook


# `model.quantizer` -> how it is built from a VQGANConfig (an explicit table; see the docstring).
QUANTIZERS = {
    "vq": lambda c: Quantizer(
        c.n_embed, c.embed_dim, c.beta, c.legacy_commitment, c.restart_dead_codes
    ),
    "vq-l2": lambda c: L2Quantizer(
        c.n_embed, c.embed_dim, c.beta, c.legacy_commitment, c.restart_dead_codes
    ),
    "fsq": lambda c: FSQQuantizer(c.fsq_levels),
    "lfq": lambda c: LFQQuantizer(c.embed_dim, c.beta, c.lfq_entropy_weight, c.lfq_diversity_gamma),
}


def codebook_size(cfg: Any) -> int:
    """Number of codes the config's quantizer has (what a prior over its indices predicts)."""
    if cfg.quantizer == "fsq":
        return math.prod(cfg.fsq_levels)
    if cfg.quantizer == "lfq":
        return 2**cfg.embed_dim
    return cfg.n_embed
