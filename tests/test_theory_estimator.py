"""The complexity-induced distance estimator on cases with a known answer."""

import pytest
import torch

from dae.config import ConfigError, from_dict
from dae.theory.distance import MultiScaleMMD
from dae.theory.estimator import (
    EstimatorConfig,
    distance_curve,
    fit_generators,
    smallest_complexity,
    standardize,
)
from dae.theory.generators import BatchedGenerator, GeneratorConfig, project_spectral_

torch.set_num_threads(1)


def _gauss(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_mmd_is_near_zero_for_equal_and_large_for_shifted():
    x, y = _gauss(400, 3, 0), _gauss(400, 3, 1)
    mmd = MultiScaleMMD.for_data(x)
    same, shifted = mmd.distance(x, y).item(), mmd.distance(x, y + 1.0).item()
    assert same < 0.05 < 0.3 < shifted
    # Unbiased: over repeated equal-distribution draws, MMD^2 averages to ~0 (can be negative).
    vals = torch.stack(
        [mmd.mmd2(_gauss(100, 3, 2 * i), _gauss(100, 3, 2 * i + 1)) for i in range(20)]
    )
    assert vals.min() < 0 and abs(vals.mean()) < 3 * vals.std() / 20**0.5


def test_spectral_projection_holds_bound_and_is_identity_inside():
    w = _gauss(4 * 6 * 5, 1, 3).view(4, 6, 5) * 3
    inside = w / torch.linalg.matrix_norm(w, ord=2)[:, None, None] * 0.5
    projected = project_spectral_(w.clone(), 1.0)
    assert torch.linalg.matrix_norm(projected, ord=2).max() <= 1.0 + 1e-5
    assert torch.allclose(project_spectral_(inside.clone(), 1.0), inside, atol=1e-5)
    # Clipping keeps the singular vectors: the top direction is unchanged.
    assert torch.allclose(
        torch.linalg.svdvals(projected)[:, 1:],
        torch.linalg.svdvals(w)[:, 1:].clamp(max=1),
        atol=1e-4,
    )


def test_lipschitz_generator_respects_its_bound_after_training_steps():
    cfg = GeneratorConfig(family="lipschitz", ladder=[0.7], width=16)
    gen = BatchedGenerator(cfg, 0.7, 2, 3, restarts=3, seed=0)
    opt = torch.optim.Adam(gen.parameters(), lr=0.5)  # large steps push weights out of the ball
    for _ in range(5):
        loss = gen(_gauss(64, 2, 4)).square().sum().neg()
        opt.zero_grad()
        loss.backward()
        opt.step()
        gen.project_()
    assert (gen.lipschitz_bound() <= 0.7 + 1e-4).all()
    # Empirical slopes between random pairs never exceed the bound.
    a, b = _gauss(500, 2, 5), _gauss(500, 2, 6)
    with torch.no_grad():
        ratio = (gen(a) - gen(b)).norm(dim=-1) / (a - b).norm(dim=-1)
    assert ratio.max() <= 0.7 + 1e-4


def test_latent_equal_to_data_reads_as_noise_floor_at_every_complexity():
    x_train, x_eval = _gauss(600, 2, 7) * 0.5 + 1, _gauss(400, 2, 8) * 0.5 + 1
    z_train, z_eval = _gauss(600, 2, 9) * 0.5 + 1, _gauss(400, 2, 10) * 0.5 + 1
    cfg = EstimatorConfig(generator=GeneratorConfig(ladder=[0, 8]), restarts=2, steps=120)
    floor = MultiScaleMMD.for_data(x_train).distance(z_eval, x_eval).item()
    curve = distance_curve(z_train, z_eval, x_train, x_eval, cfg)
    for p in curve["points"]:
        assert p["best"] < max(floor, 0.02) + 0.03, (p, floor)


def test_affine_family_recovers_gaussian_target_exactly():
    # z ~ N(0, I) pushed by z -> z M + 3 is N(3, M^T M): the affine family contains the answer.
    mix = torch.tensor([[2.0, 0.5], [-0.3, 0.7]])
    x_train, x_eval = _gauss(600, 2, 11) @ mix + 3, _gauss(400, 2, 12) @ mix + 3
    # An anisotropic latent: the PCA start (isotropic latent assumed) is wrong; training must fix it.
    stretch = torch.tensor([2.0, 0.4])
    z_train = _gauss(600, 2, 13) * stretch
    cfg = EstimatorConfig(generator=GeneratorConfig(ladder=[0]), restarts=2, steps=200, lr=0.02)
    mmd = MultiScaleMMD.for_data(x_train)
    gen = fit_generators(standardize(z_train), x_train, 0, mmd, cfg, seed=0)
    with torch.no_grad():
        out = gen(standardize(_gauss(4000, 2, 14) * stretch, reference=z_train))  # (R, N, 2)
    target_cov = mix.T @ mix
    for r in range(2):
        cov = torch.cov(out[r].T)
        assert torch.linalg.matrix_norm(cov - target_cov) < 0.12 * torch.linalg.matrix_norm(
            target_cov
        )
        assert (out[r].mean(0) - 3).abs().max() < 0.2  # ~2.5 standard errors of a 600-point mean
    # And the estimator's held-out distance is at sampling-noise level, far below a mere shift.
    best = distance_curve(z_train, _gauss(400, 2, 15) * stretch, x_train, x_eval, cfg)["points"][0][
        "best"
    ]
    assert best < 0.05 < 0.15 < mmd.distance(_gauss(400, 2, 15) + 3, x_eval).item()


def test_smallest_complexity_and_envelope():
    curve = {
        "points": [
            {"complexity": c, "best": b} for c, b in [(0, 0.3), (2, 0.08), (4, 0.1), (8, 0.01)]
        ]
    }
    assert smallest_complexity(curve, 0.09) == 2
    assert smallest_complexity(curve, 0.05) == 8
    assert smallest_complexity(curve, 0.001) == float("inf")


def test_standardize_and_config_errors():
    z = standardize(_gauss(300, 3, 15) * 7 + 2)
    assert z.mean(0).abs().max() < 1e-5 and abs(z.square().sum(1).mean().item() - 3) < 1e-4
    with pytest.raises(ConfigError, match="generator.ladder"):
        from_dict(EstimatorConfig, {"generator": {"ladder": [4, 2]}})
    with pytest.raises(ConfigError, match="generator.ladder"):
        from_dict(EstimatorConfig, {"generator": {"family": "lipschitz", "ladder": [0, 1]}})
    with pytest.raises(ConfigError, match="restart"):
        from_dict(EstimatorConfig, {"restart": 2})
