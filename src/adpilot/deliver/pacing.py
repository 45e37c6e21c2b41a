"""Budget pacing: spread each campaign's daily budget over its local day instead of spending it by noon.

The plan is the share of the daily budget that should be spent by local time t: the cumulative of an hourly
traffic profile (uniform by default). The error is relative to the plan,
``e = (spent_today / daily_budget - plan(t)) / max(plan(t), error_floor)`` (the floor, one even hour's share,
keeps the first minutes of a day from dividing by zero). A proportional-integral controller turns it into a
participation rate r in [``min_rate``, 1]::

    I <- clip(I - ki * e * dt_hours, log(min_rate), 0)      (integral, clipped against wind-up)
    r  = clip(exp(I - kp * e), min_rate, 1)

Ahead of plan (e > 0) the rate falls, behind plan it climbs back to 1. Manual-CPC and target-CPA campaigns are
*throttled* (they enter an auction with probability r, their bid untouched); max-clicks campaigns are *shaded*
(they always enter, bidding r x max_cpc), which is how a click maximiser under a budget should spend it.
``select`` / ``update`` is the contract pacers share with bidders and bandits.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from adpilot.deliver.base import clip
from adpilot.errors import check_scalar


class PIPacer:
    """Per-campaign participation rates driven by spend-vs-plan error; state is indexed by campaign row.

    >>> p = PIPacer().reset(["c1"])
    >>> p.update(np.array([0]), spent_day=np.array([50.0]), daily_budget=np.array([100.0]),
    ...          day_fraction=np.array([0.25]), now=3600.0)
    >>> bool(p.rate_[0] < 1.0)
    True
    """

    def __init__(self, kp: float = 4.0, ki: float = 2.0, min_rate: float = 0.01, error_floor: float = 1 / 24,
                 hourly_profile: Sequence[float] | None = None) -> None:
        self.kp = check_scalar(kp, "kp", ge=0)
        self.error_floor = check_scalar(error_floor, "error_floor", gt=0, le=1)
        self.ki = check_scalar(ki, "ki", ge=0)
        self.min_rate = check_scalar(min_rate, "min_rate", gt=0, le=1)
        profile = np.ones(24) if hourly_profile is None else np.asarray(hourly_profile, dtype=np.float64)
        if profile.shape != (24,) or (profile < 0).any() or profile.sum() <= 0:
            raise ValueError("`hourly_profile` must be 24 non-negative weights with a positive sum")
        self._cumulative = np.concatenate([[0.0], np.cumsum(profile) / profile.sum()])
        self._hour_grid = np.arange(25)
        self._log_min_rate = np.log(self.min_rate)  # the integral's floor, computed once rather than per update
        self._lock = threading.Lock()
        self.ids_: list[str] = []
        self.integral_ = np.zeros(0)
        self.rate_ = np.ones(0)
        self.last_ = np.full(0, np.nan)

    def reset(self, campaign_ids: Sequence[str]) -> PIPacer:
        """Re-index the state for a new snapshot's campaigns, keeping the state of those that remain."""
        with self._lock:
            old = {cid: i for i, cid in enumerate(self.ids_)}
            keep = np.asarray([old.get(cid, -1) for cid in campaign_ids], dtype=np.int64)
            n, known = len(campaign_ids), keep >= 0
            integral, rate, last = np.zeros(n), np.ones(n), np.full(n, np.nan)
            integral[known], rate[known], last[known] = (self.integral_[keep[known]], self.rate_[keep[known]],
                                                         self.last_[keep[known]])
            self.ids_, self.integral_, self.rate_, self.last_ = list(campaign_ids), integral, rate, last
        return self

    def plan(self, day_fraction: np.ndarray) -> np.ndarray:
        """Share of the daily budget planned to be spent by this fraction of the local day."""
        hours = clip(np.asarray(day_fraction) * 24.0, 0.0, 24.0)
        return np.interp(hours, self._hour_grid, self._cumulative)

    def update(self, rows: np.ndarray, spent_day: np.ndarray, daily_budget: np.ndarray,
               day_fraction: np.ndarray, now: float) -> None:
        """Move the rates of campaign ``rows`` given today's spend (including held reservations); a campaign
        listed twice moves once, by its first entry."""
        rows = np.asarray(rows)
        if len(set(rows.tolist())) < len(rows):  # the engine passes distinct campaigns: no sort on its path
            rows, first = np.unique(rows, return_index=True)
            spent_day, daily_budget, day_fraction = spent_day[first], daily_budget[first], day_fraction[first]
        plan = self.plan(day_fraction)
        share = spent_day / np.maximum(daily_budget, 1e-12)
        error = (share - plan) / np.maximum(plan, self.error_floor)
        with self._lock:
            last = self.last_[rows]
            dt_hours = np.fmin(np.fmax(now - last, 0.0), 3600.0) / 3600.0  # fmax: never updated (nan) -> 0
            integral = clip(self.integral_[rows] - self.ki * error * dt_hours, self._log_min_rate, 0.0)
            self.integral_[rows] = integral
            self.rate_[rows] = clip(np.exp(integral - self.kp * error), self.min_rate, 1.0)
            self.last_[rows] = now

    def select(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(enters the auction: bool, bid multiplier) per candidate of campaign ``rows``."""
        rate = self.rate_[rows]
        return rng.random(len(rows)) < rate, rate
