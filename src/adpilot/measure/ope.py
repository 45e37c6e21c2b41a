r"""Off-policy evaluation: the value of a policy we did not run, estimated from a log of one we did.

Estimators follow Open Bandit Pipeline's contract (same argument names, same figures to 1e-6): small frozen
dataclasses with ``estimate_policy_value(**inputs)`` and ``estimate_interval(**inputs)``. Inputs, for n logged
rounds, K actions and L positions:

- ``reward`` (n,), ``action`` (n,) in 0..K-1, ``position`` (n,) in 0..L-1 (optional when L = 1),
- ``pscore`` (n,) the logging policy's probability of the logged action, in (0, 1],
- ``action_dist`` (n, K, L) the evaluated policy's probabilities,
- ``estimated_rewards_by_reg_model`` (n, K, L) a reward model's :math:`\hat q(x, a, l)` (DM and DR only).

With :math:`w_i = \pi_e(a_i|x_i) / \pi_b(a_i|x_i)`: IPW :math:`= E_n[w_i r_i]`; SNIPW :math:`= E_n[w_i r_i] / E_n[w_i]`;
DM :math:`= E_n[\sum_a \pi_e(a|x_i) \hat q(x_i, a)]`; DR :math:`= DM + E_n[w_i (r_i - \hat q(x_i, a_i))]`.
The bootstrap resamples rounds and recomputes the estimator on each resample (so SNIPW renormalises).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from adpilot.errors import UserError, check_scalar
from adpilot.measure.intervals import Interval, bootstrap_interval


def check_ope_inputs(reward: np.ndarray, action: np.ndarray, action_dist: np.ndarray,
                     pscore: np.ndarray | None = None, position: np.ndarray | None = None,
                     estimated_rewards_by_reg_model: np.ndarray | None = None) -> np.ndarray:
    """Validate shapes and ranges; return ``position`` (zeros when absent). Problems raise :class:`UserError`."""
    action_dist = np.asarray(action_dist)
    if action_dist.ndim != 3:
        raise UserError(f"`action_dist` must have shape (n_rounds, n_actions, len_list), got {action_dist.shape}")
    n, n_actions, len_list = action_dist.shape
    for name, array in (("reward", reward), ("action", action), ("pscore", pscore), ("position", position)):
        if array is not None and np.shape(array) != (n,):
            raise UserError(f"`{name}` must have shape ({n},) like `action_dist`, got {np.shape(array)}")
    if n == 0:
        raise UserError("the log is empty: no round to evaluate")
    if (action_dist < 0).any() or not np.allclose(action_dist.sum(axis=1), 1.0, atol=1e-6):
        raise UserError("`action_dist` must be probabilities summing to 1 over actions at each position")
    if (action < 0).any() or (action >= n_actions).any():
        raise UserError(f"`action` must lie in 0..{n_actions - 1}")
    if pscore is not None:
        bad = ~((pscore > 0) & (pscore <= 1))
        if bad.any():
            raise UserError(f"`pscore` must lie in (0, 1], got {int(bad.sum())} value(s) outside, "
                            f"e.g. {pscore[bad][0]}")
    if position is None:
        if len_list != 1:
            raise UserError("`position` is required when `action_dist` has more than one position")
        position = np.zeros(n, dtype=int)
    elif (position < 0).any() or (position >= len_list).any():
        raise UserError(f"`position` must lie in 0..{len_list - 1}")
    if estimated_rewards_by_reg_model is not None and np.shape(estimated_rewards_by_reg_model) != action_dist.shape:
        raise UserError("`estimated_rewards_by_reg_model` must have the shape of `action_dist` "
                        f"{action_dist.shape}, got {np.shape(estimated_rewards_by_reg_model)}")
    return np.asarray(position, dtype=int)


@dataclass(frozen=True)
class _Estimator:
    """Shared machinery: an estimator is ``mean(numerator) / mean(denominator)`` of per-round terms."""

    name: ClassVar[str] = ""

    def _terms(self, reward, action, pscore, action_dist, position, q_hat) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def terms(self, reward, action, action_dist, pscore=None, position=None, estimated_rewards_by_reg_model=None):
        """Validated per-round (numerator, denominator or None): the estimate is their ratio of means."""
        reward = np.asarray(reward, dtype=float)
        action = np.asarray(action, dtype=int)
        pscore = None if pscore is None else np.asarray(pscore, dtype=float)
        position = check_ope_inputs(reward, action, action_dist, pscore, position, estimated_rewards_by_reg_model)
        return self._terms(reward, action, pscore, np.asarray(action_dist, dtype=float), position,
                           estimated_rewards_by_reg_model)

    def estimate_round_rewards(self, reward, action, action_dist, pscore=None, position=None,
                               estimated_rewards_by_reg_model=None) -> np.ndarray:
        """Per-round contributions whose mean is the estimate, shape (n,)."""
        numerator, denominator = self.terms(reward, action, action_dist, pscore, position,
                                                estimated_rewards_by_reg_model)
        return numerator if denominator is None else numerator / denominator.mean()

    def estimate_policy_value(self, reward, action, action_dist, pscore=None, position=None,
                              estimated_rewards_by_reg_model=None) -> float:
        """The estimated expected reward per round of the policy ``action_dist``."""
        return float(self.estimate_round_rewards(reward, action, action_dist, pscore, position,
                                                 estimated_rewards_by_reg_model).mean())

    def estimate_interval(self, reward, action, action_dist, pscore=None, position=None,
                          estimated_rewards_by_reg_model=None, level: float = 0.95, n_bootstrap: int = 2000,
                          random_state: int | None = 0) -> Interval:
        """Percentile-bootstrap interval over rounds (the reward model, if any, is held fixed)."""
        check_scalar(n_bootstrap, "n_bootstrap", ge=10)
        numerator, denominator = self.terms(reward, action, action_dist, pscore, position,
                                                estimated_rewards_by_reg_model)
        return bootstrap_interval(lambda idx: ratio_of_means(numerator, denominator, idx), numerator.shape[0],
                                  estimate=float(ratio_of_means(numerator, denominator, None)), level=level,
                                  n_bootstrap=n_bootstrap, random_state=random_state)


def ratio_of_means(numerator: np.ndarray, denominator: np.ndarray | None, idx: np.ndarray | None):
    """mean(numerator[idx]) / mean(denominator[idx]) along the last axis; a plain mean without denominator."""
    num = numerator if idx is None else numerator[idx]
    if denominator is None:
        return num.mean(axis=-1)
    den = (denominator if idx is None else denominator[idx]).mean(axis=-1)
    return num.mean(axis=-1) / np.where(den > 0, den, np.nan)


def _weights(action, pscore, action_dist, position, lambda_: float) -> np.ndarray:
    if pscore is None:
        raise UserError("`pscore` is required by importance-weighting estimators")
    w = action_dist[np.arange(action.shape[0]), action, position] / pscore
    return np.minimum(w, lambda_)


def _direct(action_dist, position, q_hat) -> np.ndarray:
    if q_hat is None:
        raise UserError("`estimated_rewards_by_reg_model` is required by model-based estimators")
    rows = np.arange(position.shape[0])
    return (np.asarray(q_hat, dtype=float)[rows, :, position] * action_dist[rows, :, position]).sum(axis=1)


@dataclass(frozen=True)
class IPW(_Estimator):
    """Inverse probability weighting, unbiased with true propensities; ``lambda_`` clips large weights."""

    lambda_: float = np.inf
    name: ClassVar[str] = "ipw"

    def __post_init__(self) -> None:
        check_scalar(self.lambda_, "lambda_", gt=0)

    def _terms(self, reward, action, pscore, action_dist, position, q_hat):
        return reward * _weights(action, pscore, action_dist, position, self.lambda_), None


@dataclass(frozen=True)
class SNIPW(_Estimator):
    """Self-normalised IPW: divides by the mean weight; slightly biased, much steadier with few clicks."""

    name: ClassVar[str] = "snipw"

    def _terms(self, reward, action, pscore, action_dist, position, q_hat):
        w = _weights(action, pscore, action_dist, position, np.inf)
        return reward * w, w


@dataclass(frozen=True)
class DM(_Estimator):
    """Direct method: the reward model's prediction averaged under the evaluated policy."""

    name: ClassVar[str] = "dm"

    def _terms(self, reward, action, pscore, action_dist, position, q_hat):
        return _direct(action_dist, position, q_hat), None


@dataclass(frozen=True)
class DR(_Estimator):
    """Doubly robust: DM plus an importance-weighted correction of the model's error on the logged action."""

    lambda_: float = np.inf
    name: ClassVar[str] = "dr"

    def __post_init__(self) -> None:
        check_scalar(self.lambda_, "lambda_", gt=0)

    def _terms(self, reward, action, pscore, action_dist, position, q_hat):
        direct = _direct(action_dist, position, q_hat)
        w = _weights(action, pscore, action_dist, position, self.lambda_)
        factual = np.asarray(q_hat, dtype=float)[np.arange(action.shape[0]), action, position]
        return direct + w * (reward - factual), None


ESTIMATORS: dict[str, type[_Estimator]] = {cls.name: cls for cls in (DM, IPW, SNIPW, DR)}


def effective_clicks(reward: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """(weighted clicks, Kish effective sample size) of an importance-weighted binary-reward log.

    The self-normalised estimate is clicks / size. A deterministic policy that agrees with a uniform logger on
    m rounds has an effective size of about m — the number of rounds that actually inform its value.
    """
    total = weights.sum()
    if total <= 0:
        return 0.0, 0.0
    size = total**2 / np.square(weights).sum()
    return float((weights * reward).sum() / total * size), float(size)


def posterior_draws(clicks: float, size: float, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Draws of a click rate under a Jeffreys Beta(clicks + 1/2, size - clicks + 1/2) posterior.

    Unlike a bootstrap, it stays wide when no logged click informs the estimate (0 of 60 is not "exactly 0").
    """
    return rng.beta(clicks + 0.5, max(size - clicks, 0.0) + 0.5, size=n_draws)
