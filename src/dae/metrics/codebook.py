"""Codebook analysis (paper Appendix B.3, Figure 6): pairwise cosine similarities, eigenvalue
decay of the cosine-distance matrix, and code usage (sorted counts, perplexity, dead codes)."""

from __future__ import annotations

import math

import torch


def pairwise_cosine(codebook: torch.Tensor) -> torch.Tensor:
    """`(K, D)` codes -> `(K, K)` cosine similarities (zero vectors count as similarity 0)."""
    unit = torch.nn.functional.normalize(codebook.double(), dim=1)
    return unit @ unit.T


def cosine_similarity_histogram(codebook: torch.Tensor, bins: int = 50) -> dict[str, list[float]]:
    """Histogram over [-1, 1] of the K(K-1)/2 off-diagonal cosine similarities."""
    cos = pairwise_cosine(codebook)
    iu = torch.triu_indices(len(cos), len(cos), offset=1)
    values = cos[iu[0], iu[1]]
    counts = torch.histc(values, bins=bins, min=-1.0, max=1.0)
    edges = torch.linspace(-1.0, 1.0, bins + 1)
    return {
        "counts": counts.tolist(),
        "edges": edges.tolist(),
        "mean": float(values.mean()) if len(values) else 0.0,
        "mean_abs": float(values.abs().mean()) if len(values) else 0.0,
    }


def cosine_distance_eigenvalues(codebook: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the symmetric cosine-distance matrix 1 − cos, by decreasing magnitude,
    normalised by the largest: a fast decay means the codes span few directions."""
    dist = 1.0 - pairwise_cosine(codebook)
    eig = torch.linalg.eigvalsh(dist)
    eig = eig[eig.abs().argsort(descending=True)]
    return eig / eig.abs()[0].clamp_min(1e-12)


def code_usage(indices: torch.Tensor, n_codes: int) -> dict[str, float | list[int]]:
    """Usage of each code over a dataset's indices: sorted counts, perplexity, dead codes."""
    counts = torch.bincount(indices.flatten().long(), minlength=n_codes)
    p = counts.double() / counts.sum().clamp_min(1)
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {
        "counts_sorted": counts.sort(descending=True).values.tolist(),
        "perplexity": float(math.exp(float(entropy))),
        "dead_codes": int((counts == 0).sum()),
        "n_codes": n_codes,
    }


def codebook_report(codebook: torch.Tensor, indices: torch.Tensor | None = None) -> dict:
    """All of the above for one codebook (and its usage over `indices` when given)."""
    out = {
        "cosine_histogram": cosine_similarity_histogram(codebook),
        "eigenvalues": cosine_distance_eigenvalues(codebook).tolist(),
    }
    if indices is not None:
        out["usage"] = code_usage(indices, len(codebook))
    return out
