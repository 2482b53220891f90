"""Latent diagnostics on known cases: spectrum, equivariance, linear probe, GMM modes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dae.metrics.diagnostics import (
    channel_spectrum,
    equivariance_errors,
    gmm_modes,
    linear_probe_accuracy,
    pca_dims,
    principal_directions,
    spectrum_report,
    variance_along,
    variance_growth,
)


def test_high_frequency_fraction_of_pure_low_and_high_frequency_latents():
    gen = torch.Generator().manual_seed(0)
    n = torch.arange(8) + 0.5
    lowest = torch.cos(math.pi * n / 8)  # the first non-constant DCT basis vector
    amp = torch.randn(16, 4, 2, generator=gen)
    low = amp[..., 0, None, None] * lowest[:, None] + amp[..., 1, None, None] * lowest[None, :]
    low = low + 3.0  # an offset (DC) is not spatial variation and is not counted
    report = spectrum_report(low)
    assert report["hf_fraction"] < 1e-12  # zero up to float32 rounding of the input
    assert len(report["spectrum"]) == round(math.hypot(7, 7)) + 1
    assert max(report["spectrum"][2:]) < 1e-12 * report["spectrum"][1]
    highest = torch.cos(math.pi * n * 7 / 8)  # the last DCT basis vector (a smooth checkerboard)
    checker = highest[:, None] * highest[None, :]
    assert spectrum_report(checker.expand(2, 3, 8, 8))["hf_fraction"] == pytest.approx(1.0)
    # white noise spreads evenly: 48 of the 63 non-DC frequencies of an 8x8 map are high
    noise = spectrum_report(torch.randn(512, 4, 8, 8, generator=gen))["hf_fraction"]
    assert noise == pytest.approx(48 / 63, abs=0.02)


def test_channel_spectrum_of_a_latent_on_three_known_directions():
    """Maps in 8 channels whose positions vary along three orthonormal directions with variances
    4, 2 and 1 (exactly, by construction): fractions 4/7, 2/7, 1/7 and zeros, whatever the
    rotation, and 99 % of the variance needs all three directions."""
    gen = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))[0][:, :3]
    # coefficients with mean 0 and exact variances: +-a over a balanced set of positions
    signs = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    coeffs = signs.repeat(64, 1) * torch.tensor([2.0, 2**0.5, 1.0], dtype=torch.float64)
    vectors = coeffs @ basis.T + 5.0  # a constant offset is not variance
    maps = vectors.reshape(16, 4, 4, 8).movedim(-1, 1)  # (N, C, h, w), every position a sample
    fractions = channel_spectrum(maps)
    expected = torch.tensor([4, 2, 1, 0, 0, 0, 0, 0], dtype=torch.float64) / 7
    assert torch.allclose(fractions, expected, atol=1e-12)
    assert torch.allclose(channel_spectrum(vectors), expected, atol=1e-12)  # (N, C) vectors
    assert pca_dims(fractions) == 3
    assert pca_dims(fractions, kept=0.5) == 1 and pca_dims(fractions, kept=6 / 7) == 2
    assert pca_dims(channel_spectrum(torch.ones(4, 8, 2, 2))) == 0  # a constant latent


def test_principal_directions_and_the_variance_growth_of_known_forces():
    """Latent vectors spread along three orthonormal directions (variances 4, 2, 1): the
    principal directions recover them, a force -c (z - mean) along one direction grows the spread
    there at rate 2c, and a commitment-like pull 2b (z - q) onto codes q in the plane of the first
    two shrinks it along the third at rate 4b and leaves the plane alone."""
    gen = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))[0][:, :3]
    signs = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    coeffs = signs.repeat(64, 1) * torch.tensor([2.0, 2**0.5, 1.0], dtype=torch.float64)
    z = coeffs @ basis.T + 3.0
    maps = z.reshape(16, 4, 4, 8).movedim(-1, 1)
    var, directions = principal_directions(maps)
    n = len(z)
    expected = torch.tensor([4.0, 2, 1, 0, 0, 0, 0, 0], dtype=torch.float64) * n / (n - 1)
    assert torch.allclose(var, expected, atol=1e-10)  # torch.cov: the unbiased variance
    # each leading direction is one of the basis vectors, up to sign
    assert torch.allclose((directions[:, :3].T @ basis).abs(), torch.eye(3, dtype=torch.float64))
    top = directions[:, :3]
    centred = z - z.mean(0)
    push = -0.5 * (centred @ top[:, :1]) @ top[:, :1].T  # -c (z - mean) along u1, c = 0.5
    rates = variance_growth(z, push, top)
    assert torch.allclose(rates, torch.tensor([1.0, 0, 0], dtype=torch.float64), atol=1e-12)
    on_plane = z.mean(0) + (centred @ top[:, :2]) @ top[:, :2].T
    pull = 2 * 0.25 * (z - on_plane)  # the gradient of 0.25 |z - sg(q)|^2 per vector
    rates = variance_growth(maps, pull.reshape(16, 4, 4, 8).movedim(-1, 1), top)
    assert torch.allclose(rates, torch.tensor([0.0, 0, -1.0], dtype=torch.float64), atol=1e-12)
    # pooled: the rate of a subspace's total variance, whatever its basis: the push grows the
    # spread along u1 (variance 4 of 7) at rate 1, so the total at 4/7; off the plane the pull
    # is the whole story (the null directions add no variance)
    pooled = variance_growth(z, push, top, pooled=True)
    assert pooled.shape == (1,) and float(pooled) == pytest.approx(4 / 7, abs=1e-12)
    mixed = top @ torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0]
    assert float(variance_growth(z, push, mixed, pooled=True)) == pytest.approx(4 / 7, abs=1e-12)
    off = variance_growth(maps, pull.reshape(16, 4, 4, 8).movedim(-1, 1), directions[:, 2:], True)
    assert float(off) == pytest.approx(-1.0, abs=1e-12)
    # a direction the latent does not vary along has no spread to grow: rate 0, not a division
    assert variance_growth(z, push, directions[:, 3:5]).abs().max() == 0
    # variance along given directions: a latent's own spectrum (biased), and codes in the plane
    # of the first two spread there as z does, and not at all off it
    assert torch.allclose(variance_along(maps, directions), var * (n - 1) / n, atol=1e-10)
    along = variance_along(on_plane, directions)
    assert torch.allclose(along[:2], var[:2] * (n - 1) / n, atol=1e-10)
    assert along[2:].abs().max() < 1e-20


def test_an_exactly_equivariant_autoencoder_has_zero_error_and_a_positional_one_does_not():
    gen = torch.Generator().manual_seed(0)
    w_enc, w_dec = torch.randn(4, 3, 1, 1, generator=gen), torch.randn(3, 4, 1, 1, generator=gen)

    def encode(x):  # 2x2 average pooling + a 1x1 conv: commutes with both transformations
        return F.conv2d(F.avg_pool2d(x, 2), w_enc)

    def decode(z):  # pointwise (an upsampling decoder could not commute with 2x2 pooling)
        return F.conv2d(z, w_dec)

    x = torch.randn(2, 3, 16, 16, generator=gen).double()
    w_enc, w_dec = w_enc.double(), w_dec.double()
    errors = equivariance_errors(encode, decode, x)
    assert set(errors) == {
        f"equivariance_{part}_{t}" for part in ("encoder", "decoder") for t in ("scale", "rot90")
    }
    assert all(v < 1e-24 for v in errors.values()), errors

    def positional(x):  # knows where the top of the image is: not rotation-equivariant
        z = encode(x)
        return z + torch.linspace(0, 1, z.shape[-2]).double()[:, None]  # + a vertical ramp

    rotated = equivariance_errors(positional, decode, x)["equivariance_encoder_rot90"]
    assert rotated > 1e-2


def test_linear_probe_separable_vs_random_labels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, 2, 2, generator=gen)
    y = (x[:, 0, 0, 0] + x[:, 1, 1, 1] > 0).long()  # a linear rule
    assert linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:]) >= 0.97
    noise = torch.randint(0, 2, (400,), generator=gen)
    assert linear_probe_accuracy(x[:300], noise[:300], x[300:], noise[300:]) < 0.7


@pytest.mark.parametrize("k", [1, 3, 5])
def test_gmm_modes_of_well_separated_gaussians(k):
    gen = torch.Generator().manual_seed(k)
    centres = torch.randn(k, 2, 4, 4, generator=gen) * 20
    labels = torch.arange(600) % k
    latents = centres[labels] + torch.randn(600, 2, 4, 4, generator=gen)
    found = gmm_modes(latents)
    assert found["modes"] == k and len(found["bic"]) == 10
