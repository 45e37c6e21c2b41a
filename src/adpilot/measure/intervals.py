"""Confidence intervals shared by every measurement: one small result type and the two ways we compute them.

Every figure the measure room prints travels with its interval, so the interval is a value, not an afterthought.
The bootstrap draws its indices from a :class:`numpy.random.RandomState` seeded by the caller; for a plain mean it
reproduces ``obp.utils.estimate_confidence_interval_by_bootstrap`` draw for draw (same seed, same interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from adpilot.errors import check_scalar

_CHUNK = 256  # bootstrap replicates drawn per batch: bounds memory at _CHUNK x n indices


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided ``level`` interval ``[lower, upper]``."""

    estimate: float
    lower: float
    upper: float
    level: float = 0.95

    def overlaps(self, other: Interval | float) -> bool:
        """True when the two intervals (or the interval and a number) share at least one point."""
        if isinstance(other, Interval):
            return self.lower <= other.upper and other.lower <= self.upper
        return self.lower <= other <= self.upper

    def format(self, digits: int = 4) -> str:
        """``0.0051 [0.0032, 0.0071]`` — the form every CLI table prints."""
        return f"{self.estimate:.{digits}f} [{self.lower:.{digits}f}, {self.upper:.{digits}f}]"

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "lower": self.lower, "upper": self.upper, "level": self.level}


def bootstrap_indices(n: int, n_bootstrap: int, random_state: int | None):
    """Yield batches of resampling indices, shape (batch, n); concatenated they are ``n_bootstrap`` rows.

    The draws are those of ``RandomState(random_state).choice(n, size=n)`` called ``n_bootstrap`` times.
    """
    check_scalar(n, "n", gt=0)
    check_scalar(n_bootstrap, "n_bootstrap", gt=0)
    rng = np.random.RandomState(random_state)
    done = 0
    while done < n_bootstrap:
        batch = min(_CHUNK, n_bootstrap - done)
        yield rng.randint(0, n, size=(batch, n))
        done += batch


def bootstrap_interval(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, estimate: float,
                       level: float = 0.95, n_bootstrap: int = 2000,
                       random_state: int | None = 0) -> Interval:
    """Percentile bootstrap of ``statistic`` over ``n`` resampled rows.

    ``statistic`` takes a batch of index rows, shape (batch, n), and returns one value per row, shape (batch,);
    ``estimate`` is the statistic on the original sample (reported as the point estimate). Resamples where the
    statistic is undefined are dropped; when more than half are, the bounds are NaN (no interval can be given).
    """
    check_scalar(level, "level", gt=0, lt=1)
    values = np.concatenate([statistic(idx) for idx in bootstrap_indices(n, n_bootstrap, random_state)])
    values = values[np.isfinite(values)]  # a resample can leave a ratio undefined (no clicks drawn)
    if values.size < 0.5 * n_bootstrap:
        return Interval(float(estimate), float("nan"), float("nan"), level)
    alpha = 1.0 - level
    lower, upper = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(estimate), float(lower), float(upper), level)


def bootstrap_mean(samples: np.ndarray, *, level: float = 0.95, n_bootstrap: int = 2000,
                   random_state: int | None = 0) -> Interval:
    """Percentile bootstrap interval of the mean of ``samples`` (shape (n,)).

    >>> bootstrap_mean(np.array([0.0, 1.0, 0.0, 1.0]), n_bootstrap=200, random_state=1).format(2)
    '0.50 [0.00, 1.00]'
    """
    samples = np.asarray(samples, dtype=float)
    return bootstrap_interval(lambda idx: samples[idx].mean(axis=1), samples.shape[0],
                              estimate=float(samples.mean()), level=level, n_bootstrap=n_bootstrap,
                              random_state=random_state)


def bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, *, level: float = 0.95,
                    n_bootstrap: int = 2000, random_state: int | None = 0) -> Interval:
    """Percentile bootstrap interval of ``mean(numerator) / mean(denominator)``, the two (n,) samples resampled as
    pairs (a paired lift).

    >>> bootstrap_ratio(np.array([2.0, 4.0, 2.0, 4.0]), np.array([1.0, 2.0, 1.0, 2.0]), n_bootstrap=200).format(1)
    '2.0 [2.0, 2.0]'
    """
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    return bootstrap_interval(lambda idx: numerator[idx].mean(axis=1) / denominator[idx].mean(axis=1),
                              numerator.shape[0], estimate=float(numerator.mean() / denominator.mean()), level=level,
                              n_bootstrap=n_bootstrap, random_state=random_state)


def wilson(successes: int, trials: int, level: float = 0.95) -> Interval:
    """Wilson score interval of a proportion: stays inside [0, 1] and behaves at 0 or n successes.

    >>> wilson(0, 100).format(3)
    '0.000 [0.000, 0.037]'
    """
    check_scalar(trials, "trials", gt=0)
    check_scalar(successes, "successes", ge=0, le=trials)
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), level)
