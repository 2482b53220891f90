"""Autoregressive sampling from the GPT prior: temperature, top-k, top-p, with a key/value cache."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from dae.config import check
from dae.priors.gpt import GPT


@dataclass
class TokenSamplingConfig:
    temperature: float = field(default=1.0, metadata={"help": "softmax temperature (> 0)"})
    top_k: int = field(default=0, metadata={"help": "keep the k most likely codes; 0: all"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus: smallest set with mass >= p"})
    kv_cache: bool = field(default=True, metadata={"help": "reuse past keys/values (same output)"})

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(self.top_k >= 0, "top_k", f"must be >= 0, got {self.top_k}")
        check(0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to -inf; `(B, V)` -> `(B, V)`."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token if the tokens before it already hold >= top_p mass; the top token stays.
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_token(
    logits: torch.Tensor, cfg: TokenSamplingConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One token per row from `(B, V)` logits -> `(B, 1)`."""
    probs = filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p).softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def generate(
    model: GPT,
    n: int,
    cfg: TokenSamplingConfig,
    labels: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Sample `n` full code sequences `(n, seq_len)`; with `kv_cache` each step feeds one token."""
    idx = model.cond_tokens(labels, n, torch.device(device))  # (n, 1)
    past = None
    for _ in range(model.seq_len):
        if cfg.kv_cache:
            logits, past = model(idx[:, -1:], past)
        else:
            logits, _ = model(idx)
        idx = torch.cat([idx, sample_token(logits[:, -1].float(), cfg, generator)], dim=1)
    return idx[:, 1:]
