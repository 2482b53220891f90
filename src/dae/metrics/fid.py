"""Distribution metrics on features: Fréchet distance, KID, Inception-style score, precision/recall.

The Fréchet distance and the KID's polynomial-kernel MMD use torchmetrics' own math
(`torchmetrics.image.fid._compute_fid`, `torchmetrics.image.kid.poly_mmd`); the features come from
any extractor in `dae.metrics.features`, so the same code gives FID (Inception) or FD-classifier.
"""

from __future__ import annotations

import torch
from torchmetrics.image.fid import _compute_fid
from torchmetrics.image.kid import poly_mmd

from dae.config import check


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean `(D,)` and unbiased covariance `(D, D)` of `(N, D)` features, in float64."""
    f = features.double()
    if len(f) < 2:
        raise ValueError(f"need at least 2 feature rows for a covariance, got {len(f)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def frechet_distance_from_stats(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) via torchmetrics (eigenvalues of Σ1Σ2), clamped at 0."""
    value = _compute_fid(mu1.double(), sigma1.double(), mu2.double(), sigma2.double())
    return max(float(value), 0.0)  # tiny negatives are round-off of a zero distance


def frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two `(N, D)` feature sets (FID when Inception)."""
    return frechet_distance_from_stats(*gaussian_stats(features1), *gaussian_stats(features2))


def kernel_distance(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: unbiased MMD² with the cubic polynomial kernel, mean and std over random subsets."""
    size = min(subset_size, len(real), len(fake))
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(len(real), generator=gen)[:size]].double()
        f = fake[torch.randperm(len(fake), generator=gen)[:size]].double()
        values.append(poly_mmd(r, f))
    v = torch.stack(values)
    return float(v.mean()), float(v.std()) if subsets > 1 else 0.0


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) ‖ p(y))) per split of the (unshuffled) rows; mean and std over splits."""
    scores = []
    for part in logits.double().chunk(splits):
        log_p = part.log_softmax(1)
        # log p(y) via logsumexp: stays finite where p(y) underflows, so 0 * log(0 / 0) is not NaN.
        log_marginal = log_p.logsumexp(0) - torch.log(
            torch.tensor(float(len(part)), dtype=log_p.dtype)
        )
        kl = (log_p.exp() * (log_p - log_marginal)).sum(1).mean()
        scores.append(kl.exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std()) if len(s) > 1 else 0.0


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of `x` to its k-th nearest other row."""
    radii = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)  # (m, N); the 0 to itself is the 1st "neighbour"
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _inside(
    query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 2048
) -> torch.Tensor:
    """For each query row: is it within the k-NN ball of at least one reference row?"""
    out = []
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i : i + chunk], ref)  # (m, N)
        out.append((d <= radii[None]).any(1))
    return torch.cat(out)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019): k-NN-ball manifolds of each set.

    Precision: fraction of fake points inside the real manifold; recall: real inside the fake one.
    """
    real, fake = real.double(), fake.double()
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points per set")
    precision = _inside(fake, real, _kth_nn_radius(real, k)).double().mean()
    recall = _inside(real, fake, _kth_nn_radius(fake, k)).double().mean()
    return float(precision), float(recall)


def distribution_metrics(
    real: dict[str, torch.Tensor],
    fake: dict[str, torch.Tensor],
    names: dict[str, str],
    kid_subsets: int = 100,
) -> dict[str, float]:
    """All distribution metrics between two feature dicts, under the extractor's metric names."""
    for which, feats in (("samples", fake), ("reference", real)):
        # A covariance needs two points; one sample used to fail deep in the linear algebra.
        check(len(feats["pool"]) >= 2, which, f"{len(feats['pool'])} image(s); need >= 2")
    out = {names["fd"]: frechet_distance(real["pool"], fake["pool"])}
    if "spatial" in real:
        out[names["sfd"]] = frechet_distance(real["spatial"], fake["spatial"])
    if "logits" in fake:
        out[names["is"]], out[names["is"] + "_std"] = inception_score(fake["logits"])
    out[names["kd"]], out[names["kd"] + "_std"] = kernel_distance(
        real["pool"], fake["pool"], kid_subsets
    )
    out["precision"], out["recall"] = precision_recall(real["pool"], fake["pool"])
    return out
