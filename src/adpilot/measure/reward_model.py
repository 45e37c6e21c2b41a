"""The reward model behind DM and DR: :math:`\\hat q(x, a, l)`, the click probability of item a at position l.

One logistic regression per position on ``[context, action_context[a]]`` (Open Bandit Pipeline's design), so
that DM/DR here are comparable with obp's. ``fit_predict`` cross-fits (each round predicted by a model that did
not see it), which is what keeps DR's correction term honest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from adpilot.errors import UserError, check_scalar


@dataclass
class RewardModel:
    """Per-position logistic regression over context and item features; ``C`` is the inverse L2 strength.

    ``cross_dims`` > 0 adds user x item interaction features (needed to personalise, see ``_features``).
    """

    n_actions: int
    len_list: int
    action_context: np.ndarray
    C: float = 100.0
    max_iter: int = 10000
    random_state: int = 12345
    cross_dims: int = 0

    def __post_init__(self) -> None:
        check_scalar(self.n_actions, "n_actions", ge=1)
        check_scalar(self.len_list, "len_list", ge=1)
        check_scalar(self.C, "C", gt=0)

    def _features(self, context: np.ndarray, action: np.ndarray) -> np.ndarray:
        """[context, item features] plus, with ``cross_dims``, the products of the first ``cross_dims`` context
        columns with every item feature — without them a linear model ranks items the same for every user."""
        items = self.action_context[action]
        if not self.cross_dims:
            return np.c_[context, items]
        cross = context[:, : self.cross_dims, None] * items[:, None, :]
        return np.c_[context, items, cross.reshape(context.shape[0], -1)]

    def _fit_one(self, x: np.ndarray, y: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        if y.min() == y.max():
            return float(y[0])  # one class only: the constant is the maximum-likelihood model
        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state).fit(x, y)

    def fit(self, context: np.ndarray, action: np.ndarray, reward: np.ndarray, position: np.ndarray) -> RewardModel:
        """Fit one model per position on the rounds shown at that position."""
        if reward.sum() == 0:
            raise UserError("the log has no clicks: a reward model cannot be fitted")
        self.models_ = []
        with threadpool_limits(1):  # small dense problems: BLAS threads only contend
            for pos in range(self.len_list):
                rows = position == pos
                if not rows.any():
                    raise UserError(f"no logged round at position {pos + 1}: cannot fit its reward model")
                self.models_.append(self._fit_one(self._features(context[rows], action[rows]), reward[rows]))
        return self

    def predict(self, context: np.ndarray) -> np.ndarray:
        """:math:`\\hat q` for every round, action and position, shape (n, n_actions, len_list)."""
        n = context.shape[0]
        out = np.empty((n, self.n_actions, self.len_list))
        with threadpool_limits(1):
            for a in range(self.n_actions):
                x = self._features(context, np.full(n, a))
                for pos, model in enumerate(self.models_):
                    out[:, a, pos] = model if isinstance(model, float) else model.predict_proba(x)[:, 1]
        return out

    def fit_predict(self, context: np.ndarray, action: np.ndarray, reward: np.ndarray, position: np.ndarray,
                    n_folds: int = 3, random_state: int = 12345) -> np.ndarray:
        """Cross-fitted predictions, shape (n, n_actions, len_list): fold k is predicted by a model fit on the rest."""
        from sklearn.model_selection import KFold

        check_scalar(n_folds, "n_folds", ge=2)
        out = np.empty((context.shape[0], self.n_actions, self.len_list))
        for train, test in KFold(n_folds, shuffle=True, random_state=random_state).split(context):
            fold = RewardModel(self.n_actions, self.len_list, self.action_context, self.C, self.max_iter,
                               self.random_state, self.cross_dims)
            out[test] = fold.fit(context[train], action[train], reward[train], position[train]).predict(context[test])
        return out
