"""A nanoGPT-style decoder-only transformer over flattened VQ code grids (taming's second stage).

The sequence a prior sees is `[cond, c_0, ..., c_{L-2}]` and it predicts `[c_0, ..., c_{L-1}]`,
where `c` is the raster-order code grid and `cond` is one extra token: a start token for an
unconditional prior, or the class token for a class-conditional one (taming's `c_indices` prefix).
Token ids: codes `[0, V)`, then the start token `V`, then class tokens `V + 1 + y`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dae.config import check

# A layer's cached keys and values, each (B, n_head, T_past, head_dim).
KV = tuple[torch.Tensor, torch.Tensor]


@dataclass
class GPTConfig:
    n_layer: int = field(default=8, metadata={"help": "transformer blocks"})
    n_head: int = field(default=8, metadata={"help": "attention heads"})
    n_embd: int = field(default=256, metadata={"help": "width (divisible by n_head)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on embeddings, attention, MLP"})
    bias: bool = field(default=True, metadata={"help": "biases in linear layers and LayerNorms"})

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "n_embd"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(
            self.n_embd % self.n_head == 0, "n_embd", f"must be divisible by n_head ({self.n_head})"
        )
        check(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions <= t (and the cached past)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        b, t, c = x.shape
        # (B, T, 3C) -> 3 x (B, n_head, T, head_dim)
        q, k, v = (
            z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
            for z in self.qkv(x).split(c, dim=2)
        )
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        n_past = k.shape[2] - t
        # With a cache the query block sits at offset n_past: row i may see keys <= n_past + i.
        mask = None
        if n_past:
            mask = torch.ones(t, k.shape[2], dtype=torch.bool, device=x.device).tril(n_past)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=not n_past,
            dropout_p=self.dropout if self.training else 0.0,
        )
        y = y.transpose(1, 2).reshape(b, t, c)  # (B, n_head, T, hd) -> (B, T, C)
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),
            nn.GELU(),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class GPT(nn.Module):
    """Decoder-only transformer: tokens `(B, T)` -> next-code logits `(B, T, vocab_size)`."""

    def __init__(self, cfg: GPTConfig, vocab_size: int, seq_len: int, n_classes: int = 0):
        super().__init__()
        self.cfg, self.vocab_size, self.seq_len, self.n_classes = (
            cfg,
            vocab_size,
            seq_len,
            n_classes,
        )
        # codes, the start token, then one token per class
        self.tok_emb = nn.Embedding(vocab_size + 1 + n_classes, cfg.n_embd)
        self.pos_emb = nn.Embedding(seq_len, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections keeps the residual stream's variance flat.
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def cond_tokens(
        self, labels: torch.Tensor | None, batch: int, device: torch.device
    ) -> torch.Tensor:
        """The first token of each sequence `(B, 1)`: the start token, or the class token."""
        if self.n_classes == 0 or labels is None:
            if self.n_classes:
                raise ValueError("this prior is class-conditional: pass labels")
            return torch.full((batch, 1), self.vocab_size, dtype=torch.long, device=device)
        return (self.vocab_size + 1 + labels.long()).view(-1, 1).to(device)

    def forward(
        self, idx: torch.Tensor, past: list[KV] | None = None
    ) -> tuple[torch.Tensor, list[KV]]:
        """Logits for the token after each position, and the updated key/value cache."""
        b, t = idx.shape
        start = past[0][0].shape[2] if past else 0
        if start + t > self.seq_len:
            raise ValueError(f"sequence of {start + t} tokens exceeds seq_len={self.seq_len}")
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T) -> (B, T, C)
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past[i] if past else None)
            cache.append(kv)
        return self.head(self.ln_f(x)), cache

    def loss(self, codes: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy of flattened code grids `(B, L)`."""
        b = codes.shape[0]
        idx = torch.cat([self.cond_tokens(labels, b, codes.device), codes[:, :-1]], dim=1)
        logits, _ = self(idx)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), codes.reshape(-1))

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay only the weights of Linear layers (not biases, norms, embeddings)."""
        decay = [m.weight for m in self.modules() if isinstance(m, nn.Linear)]
        ids = {id(p) for p in decay}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0},
        ]


# The paper-scale preset: taming-transformers' FacesHQ transformer (configs/faceshq_transformer.yaml).
TAMING_FACESHQ = GPTConfig(n_layer=24, n_head=16, n_embd=1664, dropout=0.0)
