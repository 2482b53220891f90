"""Seed statistics against textbook values (Student's sleep data, t tables, binomial tails)."""

import math
import sys

import pytest

from dae.metrics import stats

# Cushny & Peebles' sleep data as in Student (1908) / R's `sleep`: extra hours of sleep of the
# same 10 patients under two drugs. R: t.test(extra ~ group, paired = TRUE) gives
# t = -4.0621, df = 9, p-value = 0.002833, mean difference -1.58.
DRUG1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_matches_students_sleep_data():
    res = stats.paired_test(DRUG1, DRUG2)
    assert res.n == 10
    assert res.mean_diff == pytest.approx(1.58)
    assert res.t == pytest.approx(4.0621, abs=1e-4)
    assert res.t_p == pytest.approx(0.002833, abs=1e-6)
    # Patient 5 is a tie (-0.1 both times); the other 9 all favour drug 2: p = 2 / 2^9.
    assert (res.wins, res.ties, res.losses) == (9, 1, 0)
    assert res.sign_p == pytest.approx(2 / 512)
    # Swapping the arms flips the sign, not the p-values.
    swapped = stats.paired_test(DRUG2, DRUG1)
    assert swapped.t == pytest.approx(-res.t) and swapped.t_p == pytest.approx(res.t_p)
    assert (swapped.wins, swapped.losses) == (0, 9)


@pytest.mark.parametrize(
    "t, df, p",
    [
        (12.706, 1, 0.05),  # t-table two-sided 5 % critical values
        (2.262, 9, 0.05),
        (2.776, 4, 0.05),
        (4.604, 4, 0.01),
        (1.96, 10_000, 0.05),  # large df: the normal
        (0.0, 3, 1.0),
    ],
)
def test_t_two_sided_p_matches_t_tables(t, df, p):
    assert stats.t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


def test_hand_written_t_cdf_matches_closed_form_and_scipy(monkeypatch):
    # Without scipy: df = 1 is the Cauchy, P(|T| >= t) = 1 - 2 atan(t) / pi; df = 2 has
    # P(|T| >= t) = 1 - t / sqrt(2 + t^2).
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    for t in (0.1, 1.0, 3.0, 30.0):
        assert stats.t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10)
        assert stats.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10)
    hand = [stats.t_two_sided_p(t, df) for t in (0.5, 2.0, 4.0621) for df in (3, 9, 40)]
    monkeypatch.undo()
    scipy_stats = pytest.importorskip("scipy.stats")
    ref = [2 * scipy_stats.t.sf(t, df) for t in (0.5, 2.0, 4.0621) for df in (3, 9, 40)]
    assert hand == pytest.approx(ref, rel=1e-9)


def test_sign_test_exact_binomial_tails():
    assert stats.sign_test_p(10, 0) == pytest.approx(2 / 1024)
    assert stats.sign_test_p(9, 1) == pytest.approx(2 * 11 / 1024)  # 0.0215
    assert stats.sign_test_p(8, 2) == pytest.approx(2 * 56 / 1024)  # 0.109
    assert stats.sign_test_p(5, 5) == 1.0
    assert stats.sign_test_p(0, 0) == 1.0
    assert stats.sign_test_p(3, 7) == stats.sign_test_p(7, 3)


def test_degenerate_pairs_are_explicit():
    one = stats.paired_test([1.0], [2.0])
    assert math.isnan(one.t_p) and one.wins == 1 and one.sign_p == 1.0
    same = stats.paired_test([1.0, 2.0], [1.0, 2.0])
    assert math.isnan(same.t_p) and same.ties == 2
    shifted = stats.paired_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert shifted.t_p == 0.0 and shifted.t == math.inf
    with pytest.raises(ValueError, match="pairs must match"):
        stats.paired_test([1.0, 2.0], [1.0])
    assert stats.format_p(math.nan) == "n/a"


def test_numpy_arrays_are_accepted_like_lists():
    np = pytest.importorskip("numpy")
    as_arrays = stats.paired_test(np.array(DRUG1), np.array(DRUG2))
    assert as_arrays == stats.paired_test(DRUG1, DRUG2)
    assert stats.summarize(np.array([1.0, 3.0])).mean == 2.0
    with pytest.raises(ValueError, match="no pairs"):
        stats.paired_test(np.array([]), np.array([]))


def test_summarize_is_mean_and_sample_std():
    s = stats.summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert s.mean == 5.0 and s.std == pytest.approx(math.sqrt(32 / 7))
    assert stats.summarize([3.0]).std == 0.0


def test_holm_adjusts_by_rank_and_keeps_the_order():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, then 0.04 x 1 = 0.04 -> 0.06,
    # as an adjusted p never falls below one of a smaller raw p
    got = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert got == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # an undefined p is not a test: it stays nan and the family has two members
    got = stats.holm([0.01, math.nan, 0.04])
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.9]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([]) == []


def test_pearson_matches_r_cor_test_on_the_sleep_data():
    # R: cor.test(DRUG1, DRUG2) gives r = 0.7951702, t = 3.7082, df = 8, p-value = 0.005965
    r, p = stats.pearson(DRUG1, DRUG2)
    assert r == pytest.approx(0.7951702, abs=1e-7) and p == pytest.approx(0.005965, abs=1e-6)
    # three points: df = 1, the Cauchy, so p = 1 - 2 atan(|t|) / pi in closed form
    r, p = stats.pearson([0.2, 0.3, 0.4], [0.0, -0.6, -0.9])
    t = r * math.sqrt(1 / (1 - r * r))
    assert r < -0.98 and p == pytest.approx(1 - 2 * math.atan(abs(t)) / math.pi, rel=1e-9)
    assert p > 0.05  # so high an r over three seeds is not significant on its own
    assert stats.pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == (1.0, 0.0)
    r, p = stats.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])  # no spread: undefined, not an error
    assert math.isnan(r) and math.isnan(p)
    with pytest.raises(ValueError, match="at least 3"):
        stats.pearson([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="pair up"):
        stats.pearson([1.0, 2.0, 3.0], [1.0, 2.0])
