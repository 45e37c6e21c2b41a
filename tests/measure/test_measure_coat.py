"""Coat: MF recovers structure popularity cannot; evaluation refuses mismatched inputs."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.errors import UserError
from adpilot.measure import coat


def _low_rank(seed: int = 0, n_users: int = 80, n_items: int = 60):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items)) * 1.2 + 3
    ratings = np.clip(np.rint(truth + rng.normal(0, 0.3, truth.shape)), 1, 5)
    mask = rng.random(truth.shape)
    return np.where(mask < 0.3, ratings, 0), np.where(mask > 0.8, ratings, 0)


def test_measure_weighted_mf_fits_a_low_rank_matrix():
    train, test = _low_rank()
    scores = coat.WeightedMF(n_factors=2, l2=1.0, random_state=0).fit(train).score()
    rated = test > 0
    assert np.corrcoef(scores[rated], test[rated])[0, 1] > 0.8


def test_measure_coat_evaluate_ranks_mf_above_popularity():
    train, test = _low_rank(1)
    table = coat.evaluate(train, test, models=("random", "popularity", "mf"), n_bootstrap=200).set_index("model")
    assert table.loc["mf", "auc"].lower > table.loc["popularity", "auc"].upper
    assert table.loc["mf", "ndcg_lift_vs_popularity"].lower > 1.0
    assert 0.35 < table.loc["random", "auc"].estimate < 0.65


def test_measure_coat_bad_inputs():
    train, test = _low_rank()
    with pytest.raises(UserError, match="same users x items"):
        coat.evaluate(train, test[:, :10])
    with pytest.raises(UserError, match="propensities"):
        coat.evaluate(train, test, np.zeros_like(train), models=("ips-mf",))
    with pytest.raises(UserError, match="only"):
        coat.evaluate(train, np.where(test > 0, 1.0, 0.0), models=("random",))


def test_measure_coat_real_data(shared_data):
    root = shared_data / "coat_mnar"
    train, test = coat.read_matrix(root / "train.ascii", "train"), coat.read_matrix(root / "test.ascii", "test")
    props = coat.read_matrix(root / "propensities.ascii", "propensities")
    table = coat.evaluate(train, test, props, models=("popularity", "ips-mf"), n_bootstrap=200).set_index("model")
    assert table.loc["ips-mf", "auc"].lower > table.loc["popularity", "auc"].upper
    assert table.loc["ips-mf", "ndcg_lift_vs_popularity"].lower > 1.0
