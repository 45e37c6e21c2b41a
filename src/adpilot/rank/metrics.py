"""Offline CTR metrics with bootstrap 95% intervals: the ranking room's view of ``adpilot.measure.metrics``.

The metric functions live in ``adpilot.measure.metrics``; this module adds what ranking reports need on top.
When rows belong to users, intervals resample whole users (a cluster bootstrap), because a user's rows are not
independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adpilot.errors import UserError
from adpilot.measure.metrics import auc, check_inputs, ece, gauc, logloss

ECE_BINS = 15  # the ranking room's reports have always used 15 equal-width bins
LOGLOSS_EPS = 1e-7  # reported log loss clips predictions to [1e-7, 1 - 1e-7], as before


@dataclass(frozen=True)
class Estimate:
    """A metric with its bootstrap 95% interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(metric: Callable[[np.ndarray], float], n: int, groups: np.ndarray | None = None,
              n_boot: int = 200, seed: int = 0) -> Estimate:
    """``metric(index)`` on all rows and on ``n_boot`` resamples (of users when ``groups`` is given)."""
    rng = np.random.default_rng(seed)
    value = metric(np.arange(n))
    if groups is None:
        samples = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        order = np.argsort(groups, kind="stable")
        sorted_groups = np.asarray(groups)[order]
        starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
        sizes = np.diff(np.r_[starts, n])

        def resample() -> np.ndarray:
            pick = rng.integers(0, len(starts), len(starts))
            lengths = sizes[pick]
            first = np.repeat(starts[pick] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
            return order[first + np.arange(lengths.sum())]

        samples = (resample() for _ in range(n_boot))
    values = []
    for index in samples:
        try:
            values.append(metric(index))
        except UserError:  # a resample without positives: skip it
            continue
    low, high = np.percentile(values, [2.5, 97.5]) if values else (np.nan, np.nan)
    return Estimate(value, float(low), float(high))


def report(y: np.ndarray, p: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 200,
           seed: int = 0) -> dict[str, Estimate | str]:
    """AUC, log loss, ECE and (with users) gAUC, each with a 95% interval; an undefined metric says why."""
    y, p = check_inputs(y, p)
    out: dict[str, Estimate | str] = {}
    metrics: dict[str, Callable[[np.ndarray], float]] = {
        "auc": lambda i: auc(y[i], p[i]), "logloss": lambda i: logloss(y[i], p[i], LOGLOSS_EPS),
        "ece": lambda i: ece(y[i], p[i], ECE_BINS)}
    if groups is not None:
        g = np.asarray(groups)
        metrics["gauc"] = lambda i: gauc(g[i], y[i], p[i])
    for name, metric in metrics.items():
        try:
            out[name] = bootstrap(metric, len(y), groups, n_boot if name != "gauc" else max(n_boot // 4, 20), seed)
        except UserError as error:
            out[name] = str(error)
    return out
