"""Offline CTR metrics: AUC, log loss, gAUC (per user), ECE, and bootstrap 95% intervals.

Numpy only. When rows belong to users, intervals resample whole users (a cluster bootstrap), because a user's
rows are not independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from adpilot.errors import UserError


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise UserError(f"labels and predictions must be 1-d of one length, got {y.shape} and {p.shape}")
    if np.isnan(y).any():
        raise UserError("labels contain NaN")
    return y, p


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (ties count half).

    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y, p = _check(y, p)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        which = "0 (no positives)" if n_pos == 0 else "1 (no negatives)"
        raise UserError(f"AUC is undefined: every label is {which}")
    ranks = rankdata(p)
    return float((ranks[y > 0.5].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, predictions clipped to [1e-7, 1 - 1e-7]."""
    y, p = _check(y, p)
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: impression-weighted |mean(p) - mean(y)| over equal-width bins of p.

    >>> round(ece(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])), 6)
    0.0
    """
    y, p = _check(y, p)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, p, n_bins) - np.bincount(bins, y, n_bins))
    return float(gap.sum() / max(count.sum(), 1))


def gauc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUC over users who have both labels."""
    aucs, weights = _per_group_auc(*_check(y, p), np.asarray(groups))
    if len(aucs) == 0:
        raise UserError("gAUC is undefined: no user has both a positive and a negative row")
    return float(np.average(aucs, weights=weights))


def _per_group_auc(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((p, groups))
    g, y, p = groups[order], y[order], p[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    ends = np.r_[starts[1:], len(g)]
    aucs, weights = [], []
    for s, e in zip(starts, ends, strict=True):
        ys = y[s:e]
        n_pos = ys.sum()
        if 0 < n_pos < e - s:
            ranks = rankdata(p[s:e])
            aucs.append((ranks[ys > 0.5].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (e - s - n_pos)))
            weights.append(e - s)
    return np.asarray(aucs), np.asarray(weights, np.float64)


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
    y, p = _check(y, p)
    out: dict[str, Estimate | str] = {}
    metrics: dict[str, Callable[[np.ndarray], float]] = {
        "auc": lambda i: auc(y[i], p[i]), "logloss": lambda i: logloss(y[i], p[i]), "ece": lambda i: ece(y[i], p[i])}
    if groups is not None:
        g = np.asarray(groups)
        metrics["gauc"] = lambda i: gauc(y[i], p[i], g[i])
    for name, metric in metrics.items():
        try:
            out[name] = bootstrap(metric, len(y), groups, n_boot if name != "gauc" else max(n_boot // 4, 20), seed)
        except UserError as error:
            out[name] = str(error)
    return out
