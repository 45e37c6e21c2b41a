"""Open Bandit Dataset (ZOZOTOWN): logged bandit feedback with the logging policy's true propensities.

Layout ``<policy>/<campaign>/<campaign>.csv`` + ``item_context.csv`` as in the ``obp`` package; policies ``random``
(uniform) and ``bts`` (Bernoulli Thompson sampling); campaigns ``all`` (80 items), ``men`` (34), ``women`` (46).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adpilot.datasets._common import PathLike, member, source_path
from adpilot.errors import UserError

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")


@dataclass(frozen=True)
class BanditFeedback:
    """Logged rounds of a slate of ``len_list`` positions over ``n_actions`` items; arrays have length n_rounds.

    ``context`` (n_rounds, d) is the one-hot user features followed by the user–item affinities (as in obp);
    ``action_context`` (n_actions, d_a) the item features (first numeric, the rest one-hot).
    """

    policy: str
    campaign: str
    n_actions: int
    len_list: int
    action: np.ndarray  # int64 item id
    position: np.ndarray  # int64, 0-based
    reward: np.ndarray  # int64 click 0/1
    pscore: np.ndarray  # float64 propensity of (action, position) under the logging policy
    context: np.ndarray
    action_context: np.ndarray
    timestamp: np.ndarray  # datetime64[us], UTC

    @property
    def n_rounds(self) -> int:
        return len(self.action)


def load_open_bandit(policy: str = "random", campaign: str = "all", path: PathLike | None = None
                     ) -> BanditFeedback:
    """Read one (policy, campaign) log from ``path`` (default ``<shared>/open_bandit_dataset``)."""
    if policy not in POLICIES:
        raise UserError(f"`policy` must be one of {POLICIES}, got {policy!r}")
    if campaign not in CAMPAIGNS:
        raise UserError(f"`campaign` must be one of {CAMPAIGNS}, got {campaign!r}")
    folder = source_path(path, "open_bandit_dataset") / policy / campaign
    log = pd.read_csv(member(folder, f"{campaign}.csv"), index_col=0)
    items = pd.read_csv(member(folder, "item_context.csv"), index_col=0)
    user_cols = [c for c in log.columns if c.startswith("user_feature_")]
    affinity = log[[c for c in log.columns if c.startswith("user-item_affinity_")]].to_numpy(np.float64)
    context = np.hstack([pd.get_dummies(log[user_cols], drop_first=True).to_numpy(np.float64), affinity])
    numeric = items[["item_feature_0"]].to_numpy(np.float64)
    one_hot = pd.get_dummies(items.drop(columns=["item_id", "item_feature_0"]), drop_first=True)
    return BanditFeedback(
        policy=policy, campaign=campaign, n_actions=len(items), len_list=int(log["position"].max()),
        action=log["item_id"].to_numpy(np.int64), position=log["position"].to_numpy(np.int64) - 1,
        reward=log["click"].to_numpy(np.int64), pscore=log["propensity_score"].to_numpy(np.float64),
        context=context, action_context=np.hstack([numeric, one_hot.to_numpy(np.float64)]),
        timestamp=pd.to_datetime(log["timestamp"], utc=True).to_numpy("datetime64[us]"),
    )
