"""Metrics against scikit-learn where it has them, and against hand-checked cases where it does not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adpilot.errors import UserError
from adpilot.measure import metrics


def _data(n: int = 500, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    probs = np.clip(0.3 + 0.3 * labels + rng.normal(0, 0.2, n), 0.01, 0.99)
    return labels, probs


def test_measure_auc_and_logloss_match_sklearn():
    from sklearn.metrics import log_loss, roc_auc_score

    labels, probs = _data()
    assert metrics.auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs))
    assert metrics.logloss(labels, probs) == pytest.approx(log_loss(labels, probs))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=4, max_size=60))
def test_measure_auc_with_ties_matches_sklearn(pairs):
    from sklearn.metrics import roc_auc_score

    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    if labels.min() == labels.max():
        with pytest.raises(UserError):
            metrics.auc(labels, scores)
    else:
        assert metrics.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_measure_delong_interval_has_the_bootstrap_width():
    labels, probs = _data(n=800, seed=2)
    delong = metrics.auc_delong(labels, probs)
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(400):
        idx = rng.integers(0, labels.size, labels.size)
        boots.append(metrics.auc(labels[idx], probs[idx]))
    low, high = np.percentile(boots, [2.5, 97.5])
    assert delong.lower < delong.estimate < delong.upper
    assert (delong.upper - delong.lower) == pytest.approx(high - low, rel=0.2)


def test_measure_ranking_metrics_match_sklearn_ndcg():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(30), 16)
    labels = rng.binomial(1, 0.25, groups.size)
    scores = rng.normal(size=groups.size) + labels
    table = metrics.ranking_table(groups, labels, scores, k=5).set_index("group")
    for g in range(30):
        rows = groups == g
        if labels[rows].sum() == 0:
            assert np.isnan(table.loc[g, "ndcg"])
            continue
        assert table.loc[g, "ndcg"] == pytest.approx(ndcg_score([labels[rows]], [scores[rows]], k=5))
        top = np.argsort(-scores[rows])[:5]
        assert table.loc[g, "precision"] == pytest.approx(labels[rows][top].sum() / 5)
        assert table.loc[g, "recall"] == pytest.approx(labels[rows][top].sum() / labels[rows].sum())


def test_measure_calibration_of_a_calibrated_model_is_small():
    rng = np.random.default_rng(5)
    probs = rng.uniform(0, 0.3, 50_000)
    labels = rng.binomial(1, probs)
    assert metrics.ece(labels, probs) < 0.01
    assert metrics.ece(labels, np.clip(probs * 2, 0, 1)) > 0.1


def test_measure_gauc_skips_single_class_groups():
    groups = np.array([1, 1, 2, 2, 3])
    assert metrics.gauc(groups, np.array([0, 1, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8, 0.5])) == 0.5
    with pytest.raises(UserError, match="gAUC"):
        metrics.gauc(np.array([1, 2]), np.array([0, 1]), np.array([0.1, 0.2]))


def test_measure_metric_inputs_are_checked():
    with pytest.raises(UserError, match="labels"):
        metrics.auc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(UserError, match="shape"):
        metrics.auc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(UserError, match="probs"):
        metrics.logloss(np.array([0, 1]), np.array([0.1, 1.2]))
