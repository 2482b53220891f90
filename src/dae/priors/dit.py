"""DiT (Peebles & Xie, 2023): a transformer denoiser over latent patches with adaLN-Zero blocks.

Follows facebookresearch/DiT's `models.py`: patchify -> N blocks whose LayerNorm shift/scale and
residual gates come from the (timestep + class) embedding, zero-initialised so each block starts as
the identity and the network starts predicting zero -> unpatchify. With `learn_sigma` the output has
twice the input channels: the noise, then the interpolation weight of the variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dae.config import check


@dataclass(frozen=True)
class DiTSize:
    depth: int
    hidden_size: int
    num_heads: int
    patch_size: int


# DiT's model table (Table 1 of the paper): S/B/L/XL widths, each with patch 2, 4 or 8; patch 1
# (not in the paper) for latents of odd size, such as MNIST's 7x7.
_WIDTHS = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
DIT_MODELS: dict[str, DiTSize] = {
    f"DiT-{name}/{p}": DiTSize(d, h, heads, p)
    for name, (d, h, heads) in _WIDTHS.items()
    for p in (1, 2, 4, 8)
}


@dataclass
class DiTConfig:
    arch: str = field(default="DiT-S/2", metadata={"help": f"one of {sorted(DIT_MODELS)}"})
    depth: int | None = field(default=None, metadata={"help": "override the arch's depth"})
    hidden_size: int | None = field(default=None, metadata={"help": "override the arch's width"})
    num_heads: int | None = field(default=None, metadata={"help": "override the arch's heads"})
    mlp_ratio: float = field(default=4.0, metadata={"help": "MLP width / hidden size"})
    class_dropout: float = field(default=0.1, metadata={"help": "label drop rate (for CFG)"})
    learn_sigma: bool = field(default=True, metadata={"help": "also predict the variance"})

    def __post_init__(self) -> None:
        check(
            self.arch in DIT_MODELS,
            "arch",
            f"unknown DiT {self.arch!r}; one of {sorted(DIT_MODELS)}",
        )
        check(
            0 <= self.class_dropout < 1,
            "class_dropout",
            f"must be in [0, 1), got {self.class_dropout}",
        )
        size = self.size()
        check(
            size.hidden_size % size.num_heads == 0, "hidden_size", "must be divisible by num_heads"
        )

    def size(self) -> DiTSize:
        """The registry entry with this config's overrides applied."""
        base = DIT_MODELS[self.arch]
        return DiTSize(
            self.depth or base.depth,
            self.hidden_size or base.hidden_size,
            self.num_heads or base.num_heads,
            base.patch_size,
        )


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class TimestepEmbedder(nn.Module):
    """Scalar timesteps `(B,)` -> sinusoidal features -> MLP -> `(B, hidden)`."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class LabelEmbedder(nn.Module):
    """Class labels -> embeddings; row `n_classes` is the "no label" used by classifier-free guidance."""

    def __init__(self, n_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.n_classes, self.dropout = n_classes, dropout
        self.table = nn.Embedding(n_classes + 1, hidden)

    def forward(self, y: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        if drop is not None:
            y = torch.where(drop, torch.full_like(y, self.n_classes), y)
        return self.table(y)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, hd)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class DiTBlock(nn.Module):
    """Attention + MLP, each with adaLN modulation (shift, scale) and a gate, all from `c`."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        width = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, width), nn.GELU(approximate="tanh"), nn.Linear(width, hidden)
        )
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, patch: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, patch * patch * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


def sincos_pos_embed(dim: int, grid: int) -> np.ndarray:
    """Fixed 2-D sine-cosine position embedding `(grid*grid, dim)` (MAE / DiT)."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
    return np.concatenate([one_d(dim // 2, gh), one_d(dim // 2, gw)], axis=1)


class DiT(nn.Module):
    """Latents `(B, C, H, W)`, timesteps `(B,)`, labels `(B,)` -> `(B, C or 2C, H, W)`."""

    def __init__(self, cfg: DiTConfig, input_size: int, in_channels: int, n_classes: int):
        super().__init__()
        size = cfg.size()
        check(
            input_size % size.patch_size == 0,
            "model.arch",
            f"latent size {input_size} is not divisible by patch {size.patch_size}",
        )
        self.cfg, self.in_channels, self.n_classes = cfg, in_channels, n_classes
        self.out_channels = 2 * in_channels if cfg.learn_sigma else in_channels
        self.patch, self.grid = size.patch_size, input_size // size.patch_size
        hidden = size.hidden_size
        self.x_embedder = nn.Conv2d(in_channels, hidden, size.patch_size, stride=size.patch_size)
        self.t_embedder = TimestepEmbedder(hidden)
        self.y_embedder = LabelEmbedder(n_classes, hidden, cfg.class_dropout)
        pos = torch.from_numpy(sincos_pos_embed(hidden, self.grid)).float()[None]
        pos = pos.to(self.x_embedder.weight.device)  # (1, N, hidden), on "meta" when built there
        self.register_buffer("pos_embed", pos, persistent=False)  # fixed, rebuilt on load
        self.blocks = nn.ModuleList(
            DiTBlock(hidden, size.num_heads, cfg.mlp_ratio) for _ in range(size.depth)
        )
        self.final_layer = FinalLayer(hidden, size.patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's init; the adaLN-Zero part zeroes every modulation and the output layer."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.bias)
        nn.init.normal_(self.y_embedder.table.weight, std=0.02)
        for layer in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        for block in [*self.blocks, self.final_layer]:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, N, p*p*C) -> (B, C, H, W)`."""
        b, p, g, c = x.shape[0], self.patch, self.grid, self.out_channels
        x = x.view(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, c, g * p, g * p)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`drop` (bool `(B,)`) replaces those labels by the null label (training's label dropout)."""
        x = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, hidden)
        c = self.t_embedder(t) + self.y_embedder(y, drop)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))
