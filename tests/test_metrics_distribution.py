"""Distribution and reconstruction metrics against known values and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from dae.metrics.fid import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    inception_score,
    kernel_distance,
    precision_recall,
)
from dae.metrics.reconstruction import psnr, ssim


def test_fd_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fd_closed_form_between_gaussians():
    # N(0, I) vs N(m, diag(s^2)): ||m||^2 + sum(1 + s^2 - 2 s).
    d = 8
    m = torch.linspace(-1, 1, d, dtype=torch.float64)
    s = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    expected = float((m**2).sum() + (1 + s**2 - 2 * s).sum())
    got = frechet_distance_from_stats(torch.zeros(d), torch.eye(d), m, torch.diag(s**2))
    assert got == pytest.approx(expected, rel=1e-9)
    # Non-diagonal: a rotation of both covariances leaves the distance unchanged.
    q, _ = torch.linalg.qr(
        torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )
    rotated = frechet_distance_from_stats(
        torch.zeros(d), torch.eye(d), q @ m, q @ torch.diag(s**2) @ q.T
    )
    assert rotated == pytest.approx(expected, rel=1e-7)


def test_fd_from_samples_approaches_closed_form():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(20000, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(20000, 4, generator=gen, dtype=torch.float64) * 2 + 1
    # ||1||^2 * 4 + 4 * (1 + 4 - 4) = 8
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=0.05)
    mu, sigma = gaussian_stats(b)
    assert torch.allclose(mu, torch.ones(4, dtype=torch.float64), atol=0.05)
    assert torch.allclose(sigma, 4 * torch.eye(4, dtype=torch.float64), atol=0.15)


def test_fd_and_kid_grow_monotonically_with_noise():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(600, 10, generator=gen)
    noise = torch.randn(600, 10, generator=gen)
    fds = [frechet_distance(x, x + s * noise + s) for s in (0.0, 0.25, 0.5, 1.0, 2.0)]
    y = torch.randn(600, 10, generator=gen)  # a second sample of x's distribution
    kids = [
        kernel_distance(x, y + s * noise + s, subsets=10, subset_size=300)[0]
        for s in (0.0, 0.5, 1.0, 2.0)
    ]
    assert fds == sorted(fds) and fds[0] < 1e-6 < fds[1]
    # KID is unbiased: about 0 (either sign) for two samples of one distribution.
    assert kids[1:] == sorted(kids[1:]) and abs(kids[0]) < 0.1 * kids[1]


def test_inception_score_bounds():
    # A uniform classifier is maximally unsure: IS = 1. Confident, balanced over K classes: IS = K.
    assert inception_score(torch.zeros(1000, 10))[0] == pytest.approx(1.0)
    confident = torch.full((1000, 10), -1e4)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 0.0
    assert inception_score(confident, splits=10)[0] == pytest.approx(10.0, rel=1e-6)
    # All confident in one class: IS = 1 again.
    one = torch.full((100, 10), -1e4)
    one[:, 3] = 0
    assert inception_score(one, splits=1)[0] == pytest.approx(1.0)


def test_precision_recall():
    gen = torch.Generator().manual_seed(4)
    real = torch.randn(400, 5, generator=gen)
    assert precision_recall(real, real) == (1.0, 1.0)
    far = torch.randn(400, 5, generator=gen) + 100
    assert precision_recall(real, far) == (0.0, 0.0)
    # Fake covers only half of the real modes: precision high, recall about half.
    real2 = torch.cat([torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen) + 50])
    fake2 = torch.randn(300, 2, generator=gen)
    p, r = precision_recall(real2, fake2)
    assert p > 0.9 and 0.4 < r < 0.6


def test_psnr_known_value_and_ssim_identity():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    y = (x + 0.1).clamp(-1, 1)
    mse = float(((y - x) ** 2).mean())
    assert psnr(y, x) == pytest.approx(10 * math.log10(4.0 / mse), rel=1e-4)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert ssim(torch.rand(4, 3, 16, 16) * 2 - 1, x) < 0.2
    # the written-out PSNR is torchmetrics' (which dae used before), out-of-range input clamped
    from torchmetrics.functional.image import peak_signal_noise_ratio

    z = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr(z, x) == pytest.approx(
        float(peak_signal_noise_ratio(z.clamp(-1, 1), x, data_range=2.0)), rel=1e-6
    )
