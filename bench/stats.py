"""Statistics for success rates: Wilson intervals and paired (McNemar) comparisons.

Success rates are binomial proportions over episodes. A method and the baseline run on the
same episodes (same task, initial state and seed), so their difference is tested on the
discordant pairs only, with the exact (binomial) McNemar test.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from scipy.stats import binom, norm

Z_95 = float(norm.ppf(0.975))  # 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, as fractions in [0, 1].

    Returns (nan, nan) when n == 0: there is no interval without observations.
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # Clamp rounding noise at the ends (k == 0 or k == n give exactly 0 or 1 in theory).
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts b and c.

    Under the null the b + c discordant pairs split Binomial(b + c, 1/2); the p-value is
    twice the smaller tail, capped at 1. No discordant pairs gives p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), n, 0.5)))


@dataclass(frozen=True)
class PairedDifference:
    """Method minus baseline success on the episodes both finished without error.

    b: method succeeded where the baseline failed; c: baseline succeeded where the method
    failed. diff = (b - c) / n_pairs = method rate - baseline rate on the paired episodes.
    """

    n_pairs: int
    method_successes: int
    baseline_successes: int
    b: int
    c: int
    p_value: float

    @property
    def method_rate(self) -> float:
        return self.method_successes / self.n_pairs if self.n_pairs else math.nan

    @property
    def baseline_rate(self) -> float:
        return self.baseline_successes / self.n_pairs if self.n_pairs else math.nan

    @property
    def diff(self) -> float:
        return (self.b - self.c) / self.n_pairs if self.n_pairs else math.nan


def paired_difference(
    method: Mapping[Hashable, bool], baseline: Mapping[Hashable, bool]
) -> PairedDifference:
    """Pair two {episode key: success} maps on their common keys and compare them."""
    keys = method.keys() & baseline.keys()
    m = sum(bool(method[k]) for k in keys)
    s = sum(bool(baseline[k]) for k in keys)
    b = sum(bool(method[k]) and not bool(baseline[k]) for k in keys)
    c = sum(bool(baseline[k]) and not bool(method[k]) for k in keys)
    return PairedDifference(len(keys), m, s, b, c, mcnemar_exact(b, c))
