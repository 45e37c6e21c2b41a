"""Offline metrics in one place: AUC (with a DeLong interval), logloss, gAUC, ECE, and ranking metrics at k.

Inputs are plain arrays: ``labels`` in {0, 1}, ``scores`` any real (probabilities where the metric needs them),
``groups`` an id per row (a user, a request) for the per-group metrics. Ranking metrics are computed per group
and then averaged, so that a bootstrap over groups (users) gives their interval. The ranking room
(``adpilot.rank.metrics``) calls these same functions and adds its user-cluster bootstrap on top.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from adpilot.errors import UserError, check_scalar
from adpilot.measure.intervals import Interval


def _binary(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise UserError(f"`{name}` must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.dtype.kind == "f" and np.isnan(labels).any():
        raise UserError(f"`{name}` contain NaN")
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"`{name}` must hold only 0 and 1")
    return labels.astype(np.int8)


def check_inputs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int8 0/1 and scores as finite floats of one 1-D shape, or a UserError naming the argument."""
    labels = _binary(labels)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != labels.shape:
        raise UserError(f"`scores` must have the shape of `labels` {labels.shape}, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise UserError("`scores` must be finite")
    return labels, scores


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); needs both classes.

    >>> round(auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), 3)
    0.75
    """
    labels, scores = check_inputs(labels, scores)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        which = "0 (no positives)" if n_pos == 0 else "1 (no negatives)"
        raise UserError(f"AUC is undefined: every label is {which}")
    ranks = stats.rankdata(scores)
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_delong(labels: np.ndarray, scores: np.ndarray, level: float = 0.95) -> Interval:
    """AUC with DeLong's asymptotic interval (fast form of Sun & Xu 2014), clipped to [0, 1].

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 2000)
    >>> print(auc_delong(y, y + rng.normal(0, 1, 2000)).format(3))
    0.766 [0.746, 0.786]
    """
    labels, scores = check_inputs(labels, scores)
    estimate = auc(labels, scores)
    pos, neg = scores[labels == 1], scores[labels == 0]
    m, n = pos.size, neg.size
    if m < 2 or n < 2:
        raise UserError("an AUC interval needs at least two positives and two negatives")
    all_ranks = stats.rankdata(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - stats.rankdata(pos)) / n          # structural components of positives
    v01 = 1.0 - (all_ranks[m:] - stats.rankdata(neg)) / m    # ... and of negatives
    se = np.sqrt(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    z = stats.norm.ppf(0.5 + level / 2)
    return Interval(estimate, max(0.0, estimate - z * se), min(1.0, estimate + z * se), level)


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy; probabilities are clipped to [eps, 1 - eps].

    >>> round(logloss(np.array([1, 0]), np.array([0.9, 0.2])), 4)
    0.1643
    """
    labels, probs = check_inputs(labels, probs)
    if ((probs < 0) | (probs > 1)).any():
        raise UserError("`probs` must lie in [0, 1]")
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def gauc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Group AUC: per-group AUC weighted by group size, over groups holding both classes.

    >>> g = np.array([1, 1, 1, 2, 2, 2, 3])
    >>> round(gauc(g, np.array([0, 1, 1, 1, 0, 0, 1]), np.array([.1, .9, .8, .2, .3, .1, .5])), 3)
    0.75
    """
    labels, scores = check_inputs(labels, scores)
    codes = pd.factorize(np.asarray(groups))[0]  # any id type; a missing id (-1) belongs to no group
    if codes.shape != labels.shape:
        raise UserError(f"`groups` must have the shape of `labels` {labels.shape}, got {codes.shape}")
    keep = codes >= 0
    codes, labels, scores = codes[keep], labels[keep], scores[keep]
    order = np.lexsort((scores, codes))  # one sort: rows of a group together, by score
    codes, labels, scores = codes[order], labels[order], scores[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if codes.size else np.array([], int)
    total, weight = 0.0, 0
    for start, end in zip(starts, np.r_[starts[1:], codes.size], strict=True):
        n_pos = int(labels[start:end].sum())
        if 0 < n_pos < end - start:
            ranks = stats.rankdata(scores[start:end])
            group_auc = (ranks[labels[start:end] == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (end - start - n_pos))
            total += group_auc * (end - start)
            weight += end - start
    if weight == 0:
        raise UserError("gAUC needs at least one group with both a positive and a negative label")
    return total / weight


def ece(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error: mean |observed rate - mean prediction| over equal-width bins, by bin size.

    >>> round(ece(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.6])), 3)
    0.2
    """
    labels, probs = check_inputs(labels, probs)
    check_scalar(n_bins, "n_bins", ge=1)
    if ((probs < 0) | (probs > 1)).any():
        raise UserError("`probs` must lie in [0, 1]")
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)  # numpy, not calibration_table: bootstraps call it
    gaps = np.abs(np.bincount(bins, probs, n_bins) - np.bincount(bins, labels, n_bins))
    return float(gaps.sum() / labels.size)


def calibration_table(labels: np.ndarray, probs: np.ndarray, n_bins: int = 10,
                      strategy: str = "uniform") -> pd.DataFrame:
    """Per-bin mean prediction, observed rate and count over non-empty bins: the calibration plot.

    ``strategy`` "uniform" cuts [0, 1] into equal widths; "quantile" into equal counts (what a plot of small
    click rates needs, where every prediction falls in the first uniform bin).
    """
    labels, probs = check_inputs(labels, probs)
    if ((probs < 0) | (probs > 1)).any():
        raise UserError("`probs` must lie in [0, 1]")
    if strategy == "quantile":
        edges = np.unique(np.quantile(probs, np.linspace(0, 1, n_bins + 1))[1:-1])
        bins = np.searchsorted(edges, probs, side="right")
    elif strategy == "uniform":
        bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    else:
        raise UserError(f"`strategy` must be 'uniform' or 'quantile', got {strategy!r}")
    frame = pd.DataFrame({"bin": bins, "y": labels, "p": probs})
    table = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), count=("y", "size"))
    return table.reset_index()


def ranking_table(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int) -> pd.DataFrame:
    """Per-group precision@k, recall@k and NDCG@k (binary gains) of ranking each group's rows by score.

    precision@k divides by k; recall@k and NDCG@k are NaN for a group without a positive (left out of means).
    Ties keep the input order, so shuffle first if order carries information.
    """
    labels, scores = check_inputs(labels, scores)
    check_scalar(k, "k", ge=1)
    frame = pd.DataFrame({"g": np.asarray(groups), "y": labels, "s": scores})
    frame = frame.sort_values(["g", "s"], ascending=[True, False], kind="stable")
    frame["rank"] = frame.groupby("g").cumcount()
    top = frame[frame["rank"] < k]
    discount = 1.0 / np.log2(top["rank"].to_numpy() + 2.0)
    hits = top.assign(dcg=top["y"] * discount).groupby("g").agg(hits=("y", "sum"), dcg=("dcg", "sum"))
    n_pos = frame.groupby("g")["y"].sum()
    ideal_discount = np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))
    idcg = n_pos.clip(upper=k).map(lambda r: ideal_discount[r - 1] if r > 0 else np.nan)
    out = pd.DataFrame({"precision": hits["hits"] / k,
                        "recall": hits["hits"] / n_pos.replace(0, np.nan),
                        "ndcg": hits["dcg"] / idcg})
    return out.rename_axis("group").reset_index()


def precision_at_k(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over groups of the share of the top k that are positive.

    >>> round(precision_at_k(np.array([1, 1, 1]), np.array([1, 0, 1]), np.array([.9, .8, .1]), 2), 2)
    0.5
    """
    return float(ranking_table(groups, labels, scores, k)["precision"].mean())


def recall_at_k(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over groups with a positive of the share of their positives found in the top k.

    >>> round(recall_at_k(np.array([1, 1, 1]), np.array([1, 0, 1]), np.array([.9, .8, .1]), 2), 2)
    0.5
    """
    return float(ranking_table(groups, labels, scores, k)["recall"].mean())


def ndcg_at_k(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over groups with a positive of DCG@k / ideal DCG@k, binary gains.

    >>> round(ndcg_at_k(np.array([1, 1, 1]), np.array([1, 0, 1]), np.array([.9, .8, .1]), 2), 3)
    0.613
    """
    return float(ranking_table(groups, labels, scores, k)["ndcg"].mean())
