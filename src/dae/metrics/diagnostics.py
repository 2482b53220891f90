"""Cheap diagnostics of how hard a latent is to model (`dae evaluate`, group `diagnostics`).

- DCT power spectrum of the latents and its high-frequency fraction: high-frequency content makes
  latents harder to diffuse (Skorokhodov et al. 2025, "Improving the Diffusability of
  Autoencoders").
- Channel spectrum: the eigenvalues of the latent's channel covariance, and how many principal
  directions hold 99 % of its variance. A VQ latent can collapse onto a few of its channels'
  directions (the codes then tile a plane in a 64-dimensional space); on CIFAR-10 the "better
  codebook mode" of docs/results.md is a third direction opening. `variance_growth` measures
  how a loss term's gradient on the latent would grow or shrink its spread along given
  directions (scripts/latent_push.py: the decoder's push against the commitment's pull).
- Equivariance error of the encoder and the decoder under x0.5 scaling and 90-degree rotation
  (EQ-VAE, Kouzelis et al. 2025).
- Linear-probe accuracy of the flattened latents (logistic regression, scikit-learn).
- Number of Gaussian-mixture modes chosen by BIC on a PCA of the latents (MAETok, Chen et al.
  2025), with scikit-learn's `PCA` and `GaussianMixture`.

The DCT is scipy's; the spectrum binning, the equivariance protocol and the BIC sweep are dae's.
"""

from __future__ import annotations

import numpy as np
import torch

from dae.autoencoder.base import DecoupledAutoencoder
from dae.losses.equivariance import TRANSFORMS, Map


def dct_power(latents: torch.Tensor) -> np.ndarray:
    """(N, C, h, w) -> (h, w) mean power of the orthonormal 2-D DCT-II, per-map mean removed.

    The mean (DC) of each map is removed first, so the spectrum describes the spatial variation
    only, not how far from zero the encoder put each channel.
    """
    from scipy.fft import dctn

    x = latents.double()
    x = (x - x.mean(dim=(-2, -1), keepdim=True)).numpy()
    coeffs = dctn(x, type=2, norm="ortho", axes=(-2, -1))
    return (coeffs**2).mean(axis=(0, 1))


def spectrum_report(latents: torch.Tensor) -> dict[str, float | list[float]]:
    """Radial DCT spectrum (mean power per integer radius sqrt(i^2 + j^2)) and the fraction of the
    non-DC power at high frequency: index i >= h/2 or j >= w/2 (the upper half of either axis)."""
    power = dct_power(latents)
    h, w = power.shape
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    radius = np.rint(np.hypot(i, j)).astype(int)
    spectrum = [float(power[radius == r].mean()) for r in range(int(radius.max()) + 1)]
    high = (i >= h / 2) | (j >= w / 2)
    total = float(power.sum())  # the DC term is zero after the mean removal
    return {
        "spectrum": spectrum,
        "hf_fraction": float(power[high].sum()) / total if total > 0 else 0.0,
    }


def channel_spectrum(latents: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps or (N, C) vectors -> the C eigenvalues of the channel covariance (every
    position of every map one sample), largest first, as fractions of their sum."""
    x = _channel_rows(latents)
    eig = torch.linalg.eigvalsh(torch.cov(x.T).reshape(x.shape[1], x.shape[1])).flip(0)
    eig = eig.clamp_min(0.0)  # rounding can leave the null directions slightly negative
    total = eig.sum()
    return eig / total if total > 0 else eig


def principal_directions(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, h, w) maps or (N, C) vectors -> (C,) variances along the channel covariance's
    eigenvectors, largest first, and (C, C) those unit directions as columns (float64)."""
    x = _channel_rows(latents)
    eig, vec = torch.linalg.eigh(torch.cov(x.T).reshape(x.shape[1], x.shape[1]))
    return eig.flip(0).clamp_min(0.0), vec.flip(1)


def variance_along(latents: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps or (N, C) vectors -> their (biased) variance along each column of
    `directions` (float64): for a latent's own `principal_directions`, its spectrum; for another
    latent (the codes a VQ latent is quantised to), how far that one spreads along them."""
    x = _channel_rows(latents)
    return ((x - x.mean(0)) @ directions.double()).pow(2).mean(0)


def variance_growth(
    latents: torch.Tensor, grad: torch.Tensor, directions: torch.Tensor, pooled: bool = False
) -> torch.Tensor:
    """How fast a gradient step on the latent itself changes its variance along each direction:
    `-2 cov(z.u, g.u) / var(z.u)` for every column u of `directions`, g the loss gradient at z.

    A step z -> z - lr * g changes the variance along u by lr times that (relative) rate, to first
    order: positive where the loss pushes the latent's spread out along u, negative where it pulls
    it in (a commitment gradient 2b (z - q) onto codes lying in a plane: -4b off it). Only the
    force on z: the encoder moves z through its own weights, which this leaves out. `pooled`:
    one rate for the total variance of the subspace the directions span (orthonormal columns),
    which does not depend on how its directions are ordered or mixed."""
    z, g = _channel_rows(latents), _channel_rows(grad)
    centred = z - z.mean(0)
    zu, gu = centred @ directions.double(), g @ directions.double()
    var, cov = zu.pow(2).mean(0), (zu * gu).mean(0)
    if pooled:
        var, cov = var.sum().reshape(1), cov.sum().reshape(1)
    # a direction the latent does not vary along (to rounding) has no spread to grow: rate 0
    spread = var > 1e-12 * centred.pow(2).sum(1).mean()
    return torch.where(spread, -2 * cov / var.clamp_min(1e-300), 0.0)


def _channel_rows(latents: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) or (N, C) -> (rows, C) float64, every position of every map one row."""
    x = latents.detach().double()
    return x.movedim(1, -1).reshape(-1, x.shape[1]) if x.ndim == 4 else x.reshape(len(x), -1)


def pca_dims(fractions: torch.Tensor, kept: float = 0.99) -> int:
    """How many of the leading `channel_spectrum` directions it takes to hold `kept` of the
    variance (0 for a constant latent)."""
    if float(fractions.sum()) <= 0:
        return 0
    return int((fractions.cumsum(0) < kept - 1e-12).sum()) + 1


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||^2 / ||b||^2 over the batch (0 when equal, scale-free)."""
    return float((a.double() - b.double()).pow(2).sum() / b.double().pow(2).sum().clamp_min(1e-30))


@torch.no_grad()
def equivariance_errors(encode: Map, decode: Map, x: torch.Tensor) -> dict[str, float]:
    """EQ-VAE's errors: encoder ||E(t x) - t E(x)|| and decoder ||D(t z) - t D(z)|| (relative),
    for each transformation t in `TRANSFORMS`. A transformation the shapes do not allow (an odd
    latent, or a halved image whose latent is not the halved latent) is left out."""
    z = encode(x)
    x_hat = decode(z)
    out = {}
    for name, t in TRANSFORMS.items():
        if name == "scale" and (z.shape[-2] % 2 or z.shape[-1] % 2):
            continue
        z_t = encode(t(x))
        if z_t.shape != t(z).shape:
            continue
        out[f"equivariance_encoder_{name}"] = relative_error(z_t, t(z))
        out[f"equivariance_decoder_{name}"] = relative_error(decode(t(z)), t(x_hat))
    return out


def linear_probe_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Test accuracy of a logistic regression on standardised flattened latents."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    probe.fit(train_x.flatten(1).double().numpy(), train_y.numpy())
    return float(probe.score(test_x.flatten(1).double().numpy(), test_y.numpy()))


def gmm_modes(
    latents: torch.Tensor, max_modes: int = 10, pca_dims: int = 8, seed: int = 0
) -> dict[str, int | list[float]]:
    """Number of components (1..max_modes) of a diagonal Gaussian mixture with the lowest BIC,
    fitted to the flattened latents projected on their first `pca_dims` principal components."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = latents.flatten(1).double().numpy()
    dims = min(pca_dims, x.shape[1], len(x) - 1)
    projected = PCA(dims, random_state=seed).fit_transform(x)
    bic = []
    for k in range(1, max(1, min(max_modes, len(x) // 2)) + 1):  # >= 2 points per component
        gmm = GaussianMixture(k, covariance_type="diag", n_init=2, random_state=seed)
        bic.append(float(gmm.fit(projected).bic(projected)))
    return {"modes": int(np.argmin(bic)) + 1, "bic": bic, "pca_dims": dims}


@torch.no_grad()
def latent_diagnostics(
    model: DecoupledAutoencoder,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    batch_size: int = 250,
    equivariance_n: int = 64,
    gmm_n: int = 2000,
) -> tuple[dict[str, float], dict[str, object], dict[str, str]]:
    """All of the above for a model on (inputs, labels) splits: (metrics, details, skipped).

    The latent is `model.latent` (posterior mean, or the quantised code vectors): what a prior sees.
    """

    def latents(x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [model.latent(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    (x_train, y_train), (x_test, y_test) = train, test
    z_test = latents(x_test).float()
    metrics: dict[str, float] = {}
    details: dict[str, object] = {}
    skipped: dict[str, str] = {}
    channels = channel_spectrum(z_test)
    metrics["latent_pca_dims"] = pca_dims(channels)
    details["channel_spectrum"] = channels.tolist()
    if z_test.ndim == 4:
        spectrum = spectrum_report(z_test)
        metrics["latent_hf_fraction"] = spectrum["hf_fraction"]
        details["dct_spectrum"] = spectrum["spectrum"]
        errors = equivariance_errors(
            lambda v: model.latent(v).float(),
            lambda z: model.decode(z).float(),
            x_test[:equivariance_n],
        )
        metrics.update(errors)
        missing = sorted({k.rsplit("_", 1)[1] for k in errors} ^ set(TRANSFORMS))
        if missing:
            skipped["equivariance"] = f"{missing}: the latent shapes do not allow it"
    else:
        skipped["spectrum/equivariance"] = "the latents are vectors, not spatial maps"
    if len(y_train.unique()) > 1:
        metrics["linear_probe_acc"] = linear_probe_accuracy(
            latents(x_train).float(), y_train, z_test, y_test
        )
    else:
        skipped["linear_probe"] = "one class only"
    modes = gmm_modes(z_test[:gmm_n])
    metrics["gmm_modes"] = modes.pop("modes")
    details["gmm"] = modes
    return metrics, details, skipped
