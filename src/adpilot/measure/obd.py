"""Turning an Open Bandit-format log (:mod:`adpilot.datasets.open_bandit`) into model features."""

from __future__ import annotations

import numpy as np

from adpilot.datasets.open_bandit import BanditLog


class Featurizer:
    """One-hot user features + affinities (context) and encoded item features (action context).

    Fitted on the training log so that a test log is encoded with the same columns (unseen categories -> zeros).
    """

    def fit(self, log: BanditLog) -> Featurizer:
        from sklearn.preprocessing import OneHotEncoder

        self.users_ = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(log.users)
        self.n_user_columns_ = int(sum(len(c) for c in self.users_.categories_))
        numeric = log.items.select_dtypes("number")
        categorical = log.items.drop(columns=numeric.columns).astype(str)
        item_onehot = OneHotEncoder(sparse_output=False).fit_transform(categorical) if categorical.shape[1] else \
            np.zeros((log.n_actions, 0))
        self.action_context_ = np.c_[item_onehot, numeric.to_numpy(float)]
        return self

    def context(self, log: BanditLog) -> np.ndarray:
        """Shape (n_rounds, n_user_columns_ + n_affinity): the user one-hot columns come first."""
        return np.c_[self.users_.transform(log.users), log.affinity]
