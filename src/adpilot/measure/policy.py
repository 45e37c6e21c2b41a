"""Targeting policies learned from a bandit log: they rank the items and show the top L, one per position.

Contract (scikit-learn style): the constructor takes configuration only, ``fit(log)`` returns ``self``, learned
state ends in ``_``, and ``action_dist(log)`` gives the policy's choice on the rounds of any log of the same
campaign, shape (n_rounds, n_actions, len_list) — the input every off-policy estimator takes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from adpilot.datasets.open_bandit import BanditLog
from adpilot.errors import UserError, check_scalar
from adpilot.measure.obd import Featurizer
from adpilot.measure.reward_model import RewardModel


def rank_to_action_dist(scores: np.ndarray, len_list: int, random_state: int = 0) -> np.ndarray:
    """Deterministic policy: position l shows the item with the l-th highest score (ties broken at random).

    ``scores`` shape (n, n_actions) -> action_dist shape (n, n_actions, len_list) of zeros and ones.
    """
    n, n_actions = scores.shape
    if len_list > n_actions:
        raise UserError(f"cannot fill {len_list} positions with {n_actions} items")
    jitter = np.random.RandomState(random_state).uniform(0, 1e-12, size=scores.shape)
    top = np.argsort(-(scores + jitter), axis=1)[:, :len_list]
    dist = np.zeros((n, n_actions, len_list))
    rows = np.arange(n)[:, None]
    dist[rows, top, np.arange(len_list)[None, :]] = 1.0
    return dist


@dataclass
class _Policy:
    """Shared shape checks; subclasses implement ``_fit`` and ``_scores`` (n, n_actions)."""

    random_state: int = 0

    def fit(self, log: BanditLog):
        self.n_actions_, self.len_list_ = log.n_actions, log.len_list
        self._fit(log)
        return self

    def action_dist(self, log: BanditLog) -> np.ndarray:
        if not hasattr(self, "n_actions_"):
            raise RuntimeError(f"{type(self).__name__} must be fitted before action_dist")
        if log.n_actions != self.n_actions_:
            raise UserError(f"the policy was fitted on {self.n_actions_} items but the log has {log.n_actions}")
        return self._dist(log)

    def _dist(self, log: BanditLog) -> np.ndarray:
        return rank_to_action_dist(self._scores(log), self.len_list_, self.random_state)

    def _fit(self, log: BanditLog) -> None:
        raise NotImplementedError

    def _scores(self, log: BanditLog) -> np.ndarray:
        raise NotImplementedError


@dataclass
class RandomPolicy(_Policy):
    """Uniform over items at every position, drawn independently per position: the untargeted baseline."""

    random_state: int = 0

    def _fit(self, log: BanditLog) -> None:
        pass

    def _dist(self, log: BanditLog) -> np.ndarray:
        return np.full((log.n_rounds, self.n_actions_, self.len_list_), 1.0 / self.n_actions_)


@dataclass
class PopularityPolicy(_Policy):
    """The same top L items for everyone: each item's importance-weighted click rate, shrunk to the mean.

    ``prior_impressions`` is the strength of the shrinkage (a Beta prior worth that many impressions).
    """

    prior_impressions: float = 100.0
    random_state: int = 0

    def _fit(self, log: BanditLog) -> None:
        check_scalar(self.prior_impressions, "prior_impressions", ge=0)
        w = 1.0 / log.pscore
        shown = np.bincount(log.action, weights=w, minlength=log.n_actions) / w.sum() * log.n_rounds
        clicks = np.bincount(log.action, weights=w * log.reward, minlength=log.n_actions) / w.sum() * log.n_rounds
        mean = log.reward.mean()
        self.ctr_ = (clicks + self.prior_impressions * mean) / (shown + self.prior_impressions)

    def _scores(self, log: BanditLog) -> np.ndarray:
        return np.tile(self.ctr_, (log.n_rounds, 1))


@dataclass
class RewardModelPolicy(_Policy):
    """Personalised: a click model q(x, a) per position (logistic regression on user features, item features
    and their products); each round shows the items with the highest predicted click rate over positions."""

    C: float = 1.0
    random_state: int = 0

    def _fit(self, log: BanditLog) -> None:
        self.features_ = Featurizer().fit(log)
        self.model_ = RewardModel(log.n_actions, log.len_list, self.features_.action_context_, C=self.C,
                                  max_iter=2000, random_state=self.random_state,
                                  cross_dims=self.features_.n_user_columns_)
        self.model_.fit(self.features_.context(log), log.action, log.reward, log.position)

    def _scores(self, log: BanditLog) -> np.ndarray:
        return self.model_.predict(self.features_.context(log)).mean(axis=2)


@dataclass
class IPWLearner(_Policy):
    """Open Bandit Pipeline's IPWLearner: a classifier from context to the clicked item, each click weighted
    by 1 / propensity (so it imitates what was clicked, corrected for how often it was shown)."""

    C: float = 1.0
    random_state: int = 0

    def _fit(self, log: BanditLog) -> None:
        from sklearn.linear_model import LogisticRegression

        clicked = log.reward > 0
        if np.unique(log.action[clicked]).size < 2:
            raise UserError("ipw-learner needs clicks on at least two different items in the training log")
        self.features_ = Featurizer().fit(log)
        x = self.features_.context(log)[clicked]
        with warnings.catch_warnings():  # few clicks over many items: sklearn warns "looks like regression"
            warnings.simplefilter("ignore", UserWarning)
            self.model_ = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state).fit(
                x, log.action[clicked], sample_weight=1.0 / log.pscore[clicked])

    def _scores(self, log: BanditLog) -> np.ndarray:
        scores = np.zeros((log.n_rounds, self.n_actions_))
        scores[:, self.model_.classes_] = self.model_.predict_proba(self.features_.context(log))
        return scores


POLICIES: dict[str, type[_Policy]] = {
    "random": RandomPolicy,
    "popularity": PopularityPolicy,
    "ipw-learner": IPWLearner,
    "reward-model": RewardModelPolicy,
}
