"""Seed statistics for comparisons: mean ± std, paired t-test, exact sign test, Pearson r, Holm.

A comparison in dae pairs runs by seed (same seed = same initialisation, batches and, for the toy,
the same data), so the tests here work on per-seed differences `b - a`. The t distribution comes
from scipy when it is importable; the GPU machine may lack scipy, so the CDF is also written out
with the regularised incomplete beta function (Numerical Recipes' continued fraction, accurate to
~1e-12), and a test checks the two agree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (n - 1) of per-seed values."""

    n: int
    mean: float
    std: float

    def __str__(self) -> str:
        return f"{self.mean:.4g} ± {self.std:.2g}"


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sample std of `values` (std 0 for a single value)."""
    if len(values) == 0:  # not `not values`: a NumPy array has no truth value
        raise ValueError("summarize: no values")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(len(values), statistics.fmean(values), std)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        # Each iteration applies the even then the odd term of the fraction.
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for coef in (even, odd):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value P(|T| >= |t|) of Student's t with `df` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    try:
        from scipy.stats import t as student_t
    except ImportError:  # the hand-written CDF: P(|T| >= |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2)
        return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return float(2.0 * student_t.sf(abs(t), df))


@dataclass(frozen=True)
class PairedTest:
    """Per-seed differences `b - a`: their summary, paired t-test and exact sign test."""

    n: int
    mean_diff: float
    std_diff: float
    t: float
    t_p: float  # two-sided; nan with fewer than 2 pairs or all differences equal and zero
    wins: int  # b > a
    ties: int
    losses: int
    sign_p: float  # exact two-sided sign test, ties dropped

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test: P(a split at least this uneven | fair coin), ties dropped."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired comparison of `b` against `a` (same index = same seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired_test: {len(a)} vs {len(b)} values; pairs must match by seed")
    if len(a) == 0:
        raise ValueError("paired_test: no pairs")
    diffs = [float(y) - float(x) for x, y in zip(a, b)]
    s = summarize(diffs)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    if s.n < 2:
        t, t_p = math.nan, math.nan
    elif s.std == 0.0:
        # Identical differences: no spread to test against (zero: no effect; else: certain).
        t, t_p = (math.nan, math.nan) if s.mean == 0.0 else (math.copysign(math.inf, s.mean), 0.0)
    else:
        t = s.mean / (s.std / math.sqrt(s.n))
        t_p = t_two_sided_p(t, s.n - 1)
    return PairedTest(
        n=s.n,
        mean_diff=s.mean,
        std_diff=s.std,
        t=t,
        t_p=t_p,
        wins=wins,
        ties=s.n - wins - losses,
        losses=losses,
        sign_p=sign_test_p(wins, losses),
    )


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson r of paired values and its two-sided p under no correlation
    (t = r sqrt((n - 2) / (1 - r^2)), n - 2 degrees of freedom): three seeds give r = -0.99 with
    p = 0.09, so a report prints p beside r. (nan, nan) when either side has no spread."""
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} vs {len(y)} values; they must pair up")
    if len(x) < 3:
        raise ValueError(f"pearson: {len(x)} pairs; a correlation needs at least 3")
    try:
        r = statistics.correlation(x, y)
    except statistics.StatisticsError:  # a side with no spread
        return math.nan, math.nan
    r = max(-1.0, min(1.0, r))  # rounding can step just past +-1
    if abs(r) == 1.0:
        return r, 0.0
    return r, t_two_sided_p(r * math.sqrt((len(x) - 2) / (1.0 - r * r)), len(x) - 2)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of `p_values`, one family of tests, in their order.

    A table of many paired numbers gives some p < 0.05 by chance; the adjusted p of a number is
    what its own p is worth among the others (reject where adjusted p < alpha: family-wise error
    at most alpha, with no assumption on how the tests depend on each other). Undefined p-values
    (nan) stay nan and are not counted in the family.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))  # adjusted p never decreases
        out[i] = running
    return out


def format_p(p: float) -> str:
    """A p-value for a table: 3 significant digits, 'n/a' when undefined."""
    return "n/a" if math.isnan(p) else f"{p:.3g}"
