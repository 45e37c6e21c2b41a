"""Train a targeting policy on one log, estimate its value on a later log, and say honestly what that shows.

The logging policy's on-policy value (its click rate on the test log) is the yardstick. With a few dozen clicks
a bootstrap is over-confident for importance weighting: a deterministic policy agrees with the logged action on
only ~1/K of the rounds, and if none of those was clicked every resample says "exactly 0". So IPW and SNIPW get
Jeffreys-posterior intervals on their effective sample (weighted clicks out of Kish's effective size), and their
lift over the logging policy a Monte Carlo interval of the ratio of the two posteriors. DR keeps a bootstrap
interval over rounds with its cross-fitted reward model held fixed (so it omits the model's own uncertainty).
A lift interval that contains 1 is reported as "indistinguishable".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from adpilot.datasets.open_bandit import BanditLog, check_same_items
from adpilot.errors import UserError
from adpilot.measure.intervals import Interval, bootstrap_mean, bootstrap_ratio
from adpilot.measure.obd import Featurizer
from adpilot.measure.ope import DR, IPW, SNIPW, effective_clicks, posterior_draws
from adpilot.measure.policy import POLICIES
from adpilot.measure.reward_model import RewardModel


@dataclass(frozen=True)
class PolicyEstimate:
    """One (policy, estimator) row of the evaluation table."""

    policy: str
    estimator: str
    value: Interval
    lift: Interval | None
    model_held_fixed: bool = False

    @property
    def verdict(self) -> str:
        if self.lift is None or not np.isfinite([self.lift.lower, self.lift.upper]).all():
            return "no interval"
        if self.lift.lower > 1.0:
            return "better" + ("*" if self.model_held_fixed else "")
        if self.lift.upper < 1.0:
            return "worse" + ("*" if self.model_held_fixed else "")
        return "indistinguishable" + ("*" if self.model_held_fixed else "")


def evaluate_policies(train: BanditLog, test: BanditLog, policies: list[str], *, n_bootstrap: int = 2000,
                      level: float = 0.95, random_state: int = 0) -> tuple[Interval, list[PolicyEstimate]]:
    """Fit each named policy on ``train``; IPW, SNIPW and DR estimates of its value on ``test``.

    Returns the logging policy's on-policy value on ``test`` and one row per (policy, estimator).
    """
    with threadpool_limits(1):  # many small fits: BLAS threads only contend on a busy machine
        return _evaluate(train, test, policies, n_bootstrap, level, random_state)


def _evaluate(train: BanditLog, test: BanditLog, policies: list[str], n_bootstrap: int, level: float,
              random_state: int) -> tuple[Interval, list[PolicyEstimate]]:
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise UserError(f"`policy` must be among {sorted(POLICIES)}, got {unknown}")
    check_same_items(train, test)
    if train.reward.sum() == 0:
        raise UserError(f"the training log {train.source} has no clicks: there is nothing to learn a policy from")
    if test.reward.sum() == 0:
        raise UserError(f"the test log {test.source} has no clicks: no policy value or interval can be estimated")
    features = Featurizer().fit(test)
    q_hat = RewardModel(test.n_actions, test.len_list, features.action_context_, C=1.0, max_iter=2000,
                        cross_dims=features.n_user_columns_).fit_predict(
        features.context(test), test.action, test.reward, test.position, n_folds=3, random_state=random_state)
    reward = test.reward
    rng = np.random.RandomState(random_state)
    logging_draws = posterior_draws(reward.sum(), reward.size, n_bootstrap, rng)
    logging_value = _quantiles(float(reward.mean()), logging_draws, level)
    rows = []
    for name in policies:
        action_dist = POLICIES[name](random_state=random_state).fit(train).action_dist(test)
        weights = action_dist[np.arange(reward.size), test.action, test.position] / test.pscore
        value_draws = posterior_draws(*effective_clicks(reward, weights), n_bootstrap, rng)
        for estimator in (IPW(), SNIPW()):
            estimate = estimator.estimate_policy_value(reward, test.action, action_dist, test.pscore, test.position)
            scale = weights.mean() if estimator.name == "ipw" else 1.0  # IPW = SNIPW x mean weight
            rows.append(PolicyEstimate(name, estimator.name, _quantiles(estimate, value_draws * scale, level),
                                       _quantiles(estimate / logging_value.estimate,
                                                  value_draws * scale / logging_draws, level)))
        numerator, _ = DR().terms(reward, test.action, action_dist, test.pscore, test.position, q_hat)
        value = bootstrap_mean(numerator, level=level, n_bootstrap=n_bootstrap, random_state=random_state)
        lift = bootstrap_ratio(numerator, reward, level=level, n_bootstrap=n_bootstrap, random_state=random_state)
        rows.append(PolicyEstimate(name, "dr", value, lift, model_held_fixed=True))
    return logging_value, rows


def _quantiles(estimate: float, draws: np.ndarray, level: float) -> Interval:
    lower, upper = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(estimate), float(min(lower, estimate)), float(max(upper, estimate)), level)


def as_table(rows: list[PolicyEstimate]) -> pd.DataFrame:
    """The rows as a DataFrame (for JSON results and the report's lift plot)."""
    return pd.DataFrame([{"policy": r.policy, "estimator": r.estimator, "value": r.value.estimate,
                          "value_lower": r.value.lower, "value_upper": r.value.upper,
                          "lift": r.lift.estimate if r.lift else np.nan,
                          "lift_lower": r.lift.lower if r.lift else np.nan,
                          "lift_upper": r.lift.upper if r.lift else np.nan, "verdict": r.verdict} for r in rows])
