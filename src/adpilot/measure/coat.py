"""Coat: learn whom to show which item from self-selected ratings, judge it on uniformly random exposures.

Coat's training ratings are missing-not-at-random (users chose what to rate); its test ratings are on items drawn
at random for each user, so metrics on them are unbiased. Files are dense whitespace matrices (users x items,
0 = not rated); a propensity matrix of the same shape is optional. A test rating >= ``threshold`` is a positive.

Models (all ``fit(train, weights) -> self`` / ``score() -> (n_users, n_items)``):
random, popularity (count of positive training ratings), MF (biased matrix factorisation by weighted ALS) and
IPS-MF (the same, each training rating weighted by 1 / propensity — Schnabel et al. 2016).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from adpilot.errors import InputFileError, UserError, check_scalar
from adpilot.measure.intervals import Interval, bootstrap_mean, bootstrap_ratio
from adpilot.measure.metrics import auc_delong, ranking_table


def read_matrix(path: str | Path, name: str) -> np.ndarray:
    """A dense users x items matrix from a whitespace-separated text file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{name} file {path} does not exist")
    try:
        matrix = np.loadtxt(path, ndmin=2)
    except ValueError as error:
        raise InputFileError(f"{name} file {path} is not a whitespace-separated numeric matrix: {error}") from None
    if not np.isfinite(matrix).all():
        raise InputFileError(f"{name} file {path} holds non-finite values")
    return matrix


def check_pair(train: np.ndarray, test: np.ndarray, propensities: np.ndarray | None) -> None:
    """Same users and items in every matrix; ratings non-negative; propensities in (0, 1] where rated."""
    if train.shape != test.shape:
        raise UserError(f"train {train.shape} and test {test.shape} must cover the same users x items")
    for name, matrix in (("train", train), ("test", test)):
        if (matrix < 0).any():
            raise UserError(f"{name} ratings must be >= 0 (0 = not rated)")
        if not (matrix > 0).any():
            raise UserError(f"the {name} matrix holds no rating")
    if propensities is not None:
        if propensities.shape != train.shape:
            raise UserError(f"propensities {propensities.shape} must match train {train.shape}")
        rated = propensities[train > 0]
        if ((rated <= 0) | (rated > 1)).any():
            raise UserError("propensities must lie in (0, 1] for every training rating")


@dataclass
class WeightedMF:
    """Biased matrix factorisation r ~ mu + b_u + b_i + p_u . q_i, fitted by weighted alternating least squares.

    ``weights`` (same shape as the ratings) scale each observed rating's squared error: ones for plain MF,
    1 / propensity for the IPS estimate of the error on all users x items.
    """

    n_factors: int = 8
    l2: float = 5.0
    n_iter: int = 15
    random_state: int = 0

    def fit(self, ratings: np.ndarray, weights: np.ndarray | None = None) -> WeightedMF:
        # thousands of tiny batched solves: OpenBLAS threads only spin on them (100x slower on a busy machine)
        with threadpool_limits(1):
            return self._fit(ratings, weights)

    def _fit(self, ratings: np.ndarray, weights: np.ndarray | None) -> WeightedMF:
        check_scalar(self.n_factors, "n_factors", ge=1)
        check_scalar(self.l2, "l2", gt=0)
        observed = ratings > 0
        w = np.where(observed, 1.0 if weights is None else weights, 0.0)
        w = w / w[observed].mean()
        rng = np.random.RandomState(self.random_state)
        n_users, n_items = ratings.shape
        self.mu_ = float((w * ratings).sum() / w.sum())
        users = np.c_[rng.normal(0, 0.1, (n_users, self.n_factors)), np.zeros(n_users), np.ones(n_users)]
        items = np.c_[rng.normal(0, 0.1, (n_items, self.n_factors)), np.ones(n_items), np.zeros(n_items)]
        k = self.n_factors
        for _ in range(self.n_iter):
            # users: solve for [p_u, b_u] with items' [q_i, 1] fixed; target r - mu - b_i
            target = ratings - self.mu_ - items[:, k + 1][None, :]
            users[:, : k + 1] = self._solve(items[:, : k + 1], target, w)
            target = ratings.T - self.mu_ - users[:, k][None, :]
            basis = np.c_[users[:, :k], np.ones(n_users)]
            solved = self._solve(basis, target, w.T)
            items[:, :k], items[:, k + 1] = solved[:, :k], solved[:, k]
        self.users_, self.items_ = users, items
        return self

    def _solve(self, basis: np.ndarray, target: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Row-wise weighted ridge: for each row r, argmin_x sum_j w[r, j] (target[r, j] - basis[j] . x)^2."""
        gram = np.einsum("rj,jk,jl->rkl", w, basis, basis) + self.l2 * np.eye(basis.shape[1])
        rhs = (w * np.where(w > 0, target, 0.0)) @ basis
        return np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]

    def score(self) -> np.ndarray:
        """Predicted rating for every user x item, shape (n_users, n_items)."""
        k = self.n_factors
        return (self.mu_ + self.users_[:, :k] @ self.items_[:, :k].T + self.users_[:, k][:, None]
                + self.items_[:, k + 1][None, :])


def model_scores(name: str, train: np.ndarray, propensities: np.ndarray | None, threshold: float,
                 random_state: int) -> np.ndarray:
    """Score every user x item with the named model fitted on ``train``."""
    if name == "random":
        return np.random.RandomState(random_state).uniform(size=train.shape)
    if name == "popularity":
        return np.tile((train >= threshold).sum(axis=0).astype(float), (train.shape[0], 1))
    if name == "mf":
        return WeightedMF(random_state=random_state).fit(train).score()
    if name == "ips-mf":
        if propensities is None:
            raise UserError("model ips-mf needs --propensities")
        return WeightedMF(random_state=random_state).fit(train, 1.0 / np.clip(propensities, 1e-12, None)).score()
    raise UserError(f"`model` must be one of {MODELS}, got {name!r}")


MODELS = ("random", "popularity", "mf", "ips-mf")


def evaluate(train: np.ndarray, test: np.ndarray, propensities: np.ndarray | None = None, *,
             models: tuple[str, ...] = MODELS, k: int = 5, threshold: float = 4.0, n_bootstrap: int = 2000,
             random_state: int = 0) -> pd.DataFrame:
    """precision@k, NDCG@k (bootstrap over users) and AUC (DeLong) on the test ratings, one row per model,
    plus each model's NDCG@k lift over popularity with a paired bootstrap interval."""
    check_pair(train, test, propensities)
    users, items = np.nonzero(test > 0)
    labels = (test[users, items] >= threshold).astype(int)
    if labels.min() == labels.max():
        raise UserError(f"the test ratings hold only {'positives' if labels[0] else 'negatives'} at threshold "
                        f"{threshold}: no ranking metric can be computed")
    order = np.random.RandomState(random_state).permutation(users.size)  # ties must not follow item order
    users, items, labels = users[order], items[order], labels[order]
    per_user: dict[str, pd.DataFrame] = {}
    rows: list[dict[str, Any]] = []
    for name in models:
        scores = model_scores(name, train, propensities, threshold, random_state)[users, items]
        table = ranking_table(users, labels, scores, k).set_index("group")
        per_user[name] = table
        rows.append({"model": name, "auc": auc_delong(labels, scores)}
                    | {m: _user_bootstrap(table[m].to_numpy(), n_bootstrap, random_state)
                       for m in ("precision", "ndcg")})
    if "popularity" in per_user:
        base = per_user["popularity"]["ndcg"]
        for row in rows:
            row["ndcg_lift_vs_popularity"] = _paired_lift(per_user[row["model"]]["ndcg"], base, n_bootstrap,
                                                          random_state)
    return pd.DataFrame(rows)


def _user_bootstrap(values: np.ndarray, n_bootstrap: int, random_state: int) -> Interval:
    return bootstrap_mean(values[np.isfinite(values)], n_bootstrap=n_bootstrap, random_state=random_state)


def _paired_lift(model: pd.Series, base: pd.Series, n_bootstrap: int, random_state: int) -> Interval:
    both = pd.concat([model, base], axis=1).dropna().to_numpy()
    return bootstrap_ratio(both[:, 0], both[:, 1], n_bootstrap=n_bootstrap, random_state=random_state)
