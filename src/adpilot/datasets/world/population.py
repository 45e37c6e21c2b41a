"""Users: public attributes (gender, age band, geo, consent) and the hidden truth that drives their behaviour.

Latent truth per user (the ``truth/users.parquet`` columns):

- ``interest`` (n_leaves,): a sparse Dirichlet draw over leaf categories whose prior leans by gender and age
  band; 1–3 leaves usually hold most of the mass. Sessions pick their intent leaf from it, so it is recoverable
  from behaviour.
- ``style`` (8,): taste over the latent style topics (:data:`~adpilot.datasets.world.vocab.STYLES`).
- ``price_sensitivity`` β > 0: utility falls by β·log(price / leaf median).
- ``activity``: relative session rate (log-normal, heavy tail).
- ``peak_hour``, ``p_mobile``: time-of-day and device habits. ``is_bot``: click-burst robots (~1%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from adpilot.datasets.world.vocab import AGE_BANDS, AGE_WEIGHTS, GEO_WEIGHTS, GEOS, LEAVES
from adpilot.schema import USER_ARROW_SCHEMA

# Relative appetite of each age band (rows, AGE_BANDS order) for each top category (columns, CATEGORIES order).
_AGE_TOP = np.array([
    [1.5, 1.4, 1.2, 1.5, 1.2, 0.5, 0.8],
    [1.3, 1.2, 1.1, 1.2, 1.3, 1.0, 0.9],
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.3, 1.1],
    [0.8, 0.8, 0.9, 0.8, 0.8, 1.5, 1.4],
    [0.6, 0.7, 0.7, 0.6, 0.6, 1.6, 1.6],
])


@dataclass(frozen=True)
class Population:
    """Users as parallel arrays (index = position); ``table`` is the public ``USER_ARROW_SCHEMA`` table."""

    ids: pa.Array
    gender: np.ndarray  # 0 f, 1 m, 2 x
    age_band: np.ndarray
    geo: np.ndarray
    consent_personalisation: np.ndarray
    consent_ads: np.ndarray
    interest: np.ndarray  # float32 (n, n_leaves), rows sum to 1
    style: np.ndarray  # float32 (n, 8), rows sum to 1
    price_sensitivity: np.ndarray
    activity: np.ndarray
    is_bot: np.ndarray
    peak_hour: np.ndarray
    p_mobile: np.ndarray
    table: pa.Table

    @property
    def n(self) -> int:
        return len(self.gender)

    def truth_table(self) -> pa.Table:
        """The hidden truth keyed by raw ``user_id`` (what understand's recovery is measured against)."""
        n_leaves = self.interest.shape[1]
        return pa.table({
            "user_id": self.ids,
            "interest": pa.FixedSizeListArray.from_arrays(pa.array(self.interest.ravel()), n_leaves),
            "style": pa.FixedSizeListArray.from_arrays(pa.array(self.style.ravel()), self.style.shape[1]),
            "price_sensitivity": self.price_sensitivity,
            "activity": self.activity,
            "is_bot": self.is_bot,
            "peak_hour": self.peak_hour,
            "p_mobile": self.p_mobile,
        })


def _dirichlet(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise Dirichlet draws for an (n, k) matrix of concentrations (vectorised via gammas)."""
    g = rng.standard_gamma(alpha) + 1e-12
    return g / g.sum(axis=1, keepdims=True)


def make_population(n_users: int, rng: np.random.Generator, bot_share: float = 0.01) -> Population:
    """Draw ``n_users`` users with their public attributes and hidden truth."""
    gender = rng.choice(3, n_users, p=[0.52, 0.45, 0.03])
    age_band = rng.choice(len(AGE_BANDS), n_users, p=AGE_WEIGHTS)
    geo = rng.choice(len(GEOS), n_users, p=np.asarray(GEO_WEIGHTS) / sum(GEO_WEIGHTS))
    lean = np.array([leaf.lean for _, leaf in LEAVES])
    leaf_top = np.array([c for c, _ in LEAVES])
    sign = np.array([0.9, -0.9, 0.0])[gender]
    prior = np.exp(sign[:, None] * lean[None, :]) * _AGE_TOP[age_band][:, leaf_top]
    prior /= prior.sum(axis=1, keepdims=True)
    interest = 0.95 * _dirichlet(2.5 * prior, rng) + 0.05 * prior
    style = 0.95 * _dirichlet(np.full((n_users, 8), 0.5), rng) + 0.05 / 8
    is_bot = rng.random(n_users) < bot_share
    activity = np.exp(rng.normal(0.0, 1.0, n_users))
    peak_hour = (rng.choice([9.0, 12.5, 20.5, 22.5], n_users, p=[0.15, 0.2, 0.4, 0.25])
                 + rng.normal(0, 1.2, n_users)) % 24
    width = len(str(n_users))
    ids = pa.array([f"u{i:0{width}d}" for i in range(n_users)])
    consent_p = rng.random(n_users) >= 0.07
    consent_ads = rng.random(n_users) >= 0.03
    table = pa.table({
        "user_id": ids,
        "gender": pa.array(np.array(["f", "m", "x"])[gender]),
        "age_band": pa.array(np.array(AGE_BANDS)[age_band]),
        "geo": pa.array(np.array(GEOS)[geo]),
        "consent_personalisation": consent_p,
        "consent_ads": consent_ads,
    }, schema=USER_ARROW_SCHEMA)
    return Population(
        ids=ids, gender=gender, age_band=age_band, geo=geo, consent_personalisation=consent_p,
        consent_ads=consent_ads, interest=interest.astype(np.float32), style=style.astype(np.float32),
        price_sensitivity=np.exp(rng.normal(0.0, 0.45, n_users)), activity=activity, is_bot=is_bot,
        peak_hour=peak_hour, p_mobile=rng.beta(6, 2, n_users), table=table,
    )
