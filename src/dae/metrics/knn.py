"""Nearest-neighbour label accuracy of a representation (latents, reconstructions, features)."""

from __future__ import annotations

import torch


@torch.no_grad()
def knn_predict(
    ref: torch.Tensor, ref_labels: torch.Tensor, query: torch.Tensor, k: int = 1, chunk: int = 4096
) -> torch.Tensor:
    """Majority label of the `k` nearest (Euclidean) reference points of each query row."""
    if ref.ndim != 2 or query.ndim != 2 or ref.shape[1] != query.shape[1]:
        raise ValueError(
            f"expected (N, D) and (M, D) features, got {tuple(ref.shape)}, {tuple(query.shape)}"
        )
    if not 1 <= k <= len(ref):
        raise ValueError(f"k must be in [1, {len(ref)}], got {k}")
    n_classes = int(ref_labels.max()) + 1
    preds = []
    for start in range(0, len(query), chunk):
        dist = torch.cdist(query[start : start + chunk].double(), ref.double())  # (m, N)
        idx = dist.topk(k, largest=False).indices  # (m, k)
        votes = torch.zeros(len(idx), n_classes, dtype=torch.long)
        votes.scatter_add_(1, ref_labels[idx], torch.ones_like(idx))
        preds.append(votes.argmax(1))  # ties go to the smaller label
    return torch.cat(preds)


def knn_accuracy(
    ref: torch.Tensor,
    ref_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 1,
) -> float:
    """Fraction of query rows whose k-NN label (among `ref`) equals their own label."""
    return (knn_predict(ref, ref_labels, query, k) == query_labels).double().mean().item()
