"""The auction: bids per click by strategy, eCPM ranking with a reserve, and second- or first-price charging.

Billing model: advertisers pay per click (CPC). The auction ranks by eCPM = 1000 x pCTR x bid-per-click and
charges the winner of position i, per click, the least bid that would have kept its position:
``max(eCPM of position i+1, reserve) / (1000 x pCTR_i)``, never above its own bid and never below ``min_cpc``
(generalised second price). Under first price the winner pays its bid. Ties are broken by a seeded random draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from adpilot.deliver.snapshot import CampaignTable

PriceRule = Literal["second", "first"]


def bids_per_click(campaigns: CampaignTable, camp: np.ndarray, pcvr: np.ndarray,
                   multiplier: np.ndarray) -> np.ndarray:
    """Bid per click of each candidate: manual CPC -> ``max_cpc``; target CPA (oCPC) -> ``target_cpa x pCVR``;
    max clicks -> ``max_cpc`` shaded by the pacing ``multiplier`` (its budget, not its bid, is the constraint)."""
    strategy = campaigns.strategy[camp]
    capped = campaigns.max_cpc[camp] * np.where(strategy == 2, multiplier, 1.0)
    return np.where(strategy == 1, campaigns.target_cpa[camp] * pcvr, capped)


def best_per_group(groups: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the highest ``value`` in each group (one ad per campaign competes).

    >>> best_per_group(np.array([1, 1, 2]), np.array([0.1, 0.3, 0.2])).tolist()
    [1, 2]
    """
    by_group = np.sort(groups)
    if not (by_group[1:] == by_group[:-1]).any():  # one candidate per group: each is its group's best
        return np.arange(len(groups))
    order = np.lexsort((-value, groups))
    first = np.ones(len(order), dtype=bool)
    grouped = groups[order]
    first[1:] = grouped[1:] != grouped[:-1]
    return np.sort(order[first])


@dataclass(frozen=True)
class AuctionResult:
    """Ranked candidates (indices into the inputs, best first) and each one's price per click if it wins."""

    order: np.ndarray
    price: np.ndarray  # aligned with ``order``


def rank(ecpm: np.ndarray, reserve_cpm: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the bidders at or above the reserve (finite, positive eCPM), best first, ties in random order."""
    eligible = (np.isfinite(ecpm) & (ecpm > 0) & (ecpm >= reserve_cpm)).nonzero()[0]
    ties = rng.random(len(eligible))  # drawn whether needed or not: the request's stream stays the same
    key = -ecpm[eligible]
    order = np.argsort(key, kind="stable")
    ranked = key[order]
    if (ranked[1:] == ranked[:-1]).any():  # equal eCPMs: the random draw orders them (else a plain sort does)
        order = np.lexsort((ties, key))
    return eligible[order]


def prices(ecpm: np.ndarray, bid: np.ndarray, pctr: np.ndarray, reserve_cpm: float,
           rule: PriceRule = "second", min_cpc: float = 0.0) -> np.ndarray:
    """Price per click of each position of an already ranked list (arrays in rank order)."""
    if rule == "first":
        return bid.copy()
    if rule != "second":
        raise ValueError(f"`rule` must be 'second' or 'first', got {rule!r}")
    next_ecpm = np.append(ecpm[1:], reserve_cpm)
    price = np.maximum(next_ecpm, reserve_cpm) / (1000.0 * pctr)
    return np.minimum(np.maximum(price, min_cpc), bid)


def run_auction(ecpm: np.ndarray, bid: np.ndarray, pctr: np.ndarray, reserve_cpm: float,
                rng: np.random.Generator, rule: PriceRule = "second", min_cpc: float = 0.0) -> AuctionResult:
    """Rank all bidders at or above the reserve and price every position.

    >>> r = run_auction(np.array([10.0, 30.0, 20.0]), np.array([1.0, 3.0, 2.0]), np.full(3, 0.01),
    ...                 reserve_cpm=5.0, rng=np.random.default_rng(0))
    >>> r.order.tolist(), [round(p, 6) for p in r.price]
    ([1, 2, 0], [2.0, 1.0, 0.5])
    """
    order = rank(ecpm, reserve_cpm, rng)
    return AuctionResult(order, prices(ecpm[order], bid[order], pctr[order], reserve_cpm, rule, min_cpc))
