"""Theorem 4.1's closed form vs projected gradient descent, and the 1-D toy's closed form."""

import math

import pytest
import torch

from dae.config import ConfigError, from_dict
from dae.theory.linear_ae import LinearAEConfig, closed_form, second_moment, train_grid, waterfill
from dae.theory.oned import closed_form_tv, numerical_tv, scaling_exponent, threshold

torch.set_num_threads(1)


def test_closed_form_spectral_depends_on_product_only():
    lam = torch.tensor([9.0, 4.0, 1.0, 0.25], dtype=torch.float64)
    pca = closed_form(lam, 2, 10.0, 10.0, "spectral")
    assert pca["excess"] == pytest.approx(0.0) and pca["error"] == pytest.approx(1.25)
    half = closed_form(lam, 2, 0.25, 2.0, "spectral")  # a b = 0.5: DE = 0.5 P_2
    assert half["excess"] == pytest.approx(0.25 * 13.0)
    assert closed_form(lam, 2, 2.0, 0.25, "spectral")["error"] == pytest.approx(half["error"])


def test_waterfill_budget_and_dropped_components():
    lam = torch.tensor([4.0, 1.0, 0.5], dtype=torch.float64)
    m = waterfill(lam, 0.5)  # small budget: only the first component (c < 1 - lam_2 / lam_1)
    assert m.tolist() == pytest.approx([0.5, 0.0, 0.0])
    # PC 2 enters at c = 1 - 1/4 = 0.75, PC 3 at c = (1 - 0.5/4) + (1 - 0.5/1) = 1.375.
    assert waterfill(lam, 1.0).tolist() == pytest.approx([0.8, 0.2, 0.0])
    m = waterfill(lam, 1.5)
    assert m.sum().item() == pytest.approx(1.5) and (m > 0).sum() == 3
    assert waterfill(lam, 3.0).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("norm", ["spectral", "frobenius"])
def test_projected_gd_matches_closed_form(norm):
    cfg = from_dict(
        LinearAEConfig,
        {
            "singular_values": [2.0, 1.5, 1.0, 0.5, 0.3],
            "rank": 2,
            "norm": norm,
            "enc_bounds": [0.2, 0.8, 3.0],
            "dec_bounds": [0.3, 1.5],
            "steps": 600,
            "restarts": 1,
        },
    )
    res = train_grid(cfg)
    for cell in res["cells"]:
        # GD can never beat the optimum (the closed form is a lower bound) and should reach it.
        assert cell["error"] >= cell["theory_error"] * (1 - 1e-9)
        assert cell["error"] == pytest.approx(cell["theory_error"], rel=1e-3)
        assert cell["components"] == cell["theory_components"]
        assert cell["top_subspace_fraction"] == pytest.approx(1.0, abs=1e-3)
    _, lam = second_moment(cfg)
    assert lam.tolist() == pytest.approx([4.0, 2.25, 1.0, 0.25, 0.09])


def test_linear_ae_config_errors():
    with pytest.raises(ConfigError, match="rank"):
        from_dict(LinearAEConfig, {"singular_values": [2.0, 1.0], "rank": 2})
    with pytest.raises(ConfigError, match="singular_values"):
        from_dict(LinearAEConfig, {"singular_values": [1.0, 2.0]})


def test_oned_closed_form_limits_and_exponent():
    a = 2.0
    c_star = threshold(a)
    assert c_star == pytest.approx(a * math.sqrt(2 / math.pi))
    assert closed_form_tv(c_star, a) == 0.0 and closed_form_tv(1.5 * c_star, a) == 0.0
    assert closed_form_tv(1e-6, a) > 0.999
    tvs = [closed_form_tv(r * c_star, a) for r in (0.1, 0.3, 0.6, 0.9)]
    assert tvs == sorted(tvs, reverse=True)
    assert scaling_exponent(a, [1e-4, 1e-3, 1e-2]) == pytest.approx(1.5, abs=0.01)


def test_oned_numerical_optimum_matches_closed_form():
    a = 1.0
    for ratio in (0.3, 0.7):
        c = ratio * threshold(a)
        num = numerical_tv(c, a, cells=200, steps=600)
        # The optimiser over a discretised family can only do worse, and only by a little.
        assert closed_form_tv(c, a) - 1e-4 <= num <= closed_form_tv(c, a) + 0.01
