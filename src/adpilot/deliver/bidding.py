"""Real-time bidding strategies for budgeted click maximisation, with one ``start`` / ``select`` / ``update``
contract.

A bidder sees one auction at a time in each of a batch of independent episodes (campaign-days in serving, replay
episodes offline): ``select`` returns the bids for the batch given the predicted CTRs and the remaining budget
and auctions, ``update`` tells it which auctions it won, what it paid and which won impressions were clicked.
Batching over episodes keeps the replay vectorised; serving one request is a batch of one.

The baselines are those of Cai et al., *Real-Time Bidding by Reinforcement Learning in Display Advertising*
(WSDM 2017), exactly as their published code defines them: Mcpc bids ``pCTR x CPC``, Lin-bid bids
``b0 x pCTR / avg CTR`` and RLB solves the budget-constrained MDP by dynamic programming with the average CTR and
the training market-price histogram. :class:`ReSolvingBidder` is ours (see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from adpilot.errors import check_scalar

MAX_BID = 300  # iPinYou bids and market prices are CPM in fen, capped at 300 in the published protocol


@dataclass(frozen=True)
class CampaignStats:
    """What the training period tells a bidder about a campaign.

    ``cpm`` is the average cost per impression (training cost / impressions, so CPM / 1000), ``cpc`` the cost
    per click, ``ctr`` clicks / impressions, ``price_counts`` the market-price histogram, shape (MAX_BID + 1,).
    """

    cpm: float
    cpc: float
    ctr: float
    price_counts: np.ndarray

    def __post_init__(self) -> None:
        for name in ("cpm", "cpc", "ctr"):
            check_scalar(getattr(self, name), name, gt=0)
        counts = np.asarray(self.price_counts, dtype=np.float64)
        if counts.ndim != 1 or counts.size < 2 or (counts < 0).any():
            raise ValueError(f"`price_counts` must be a 1-d histogram of counts >= 0, got shape {counts.shape}")

    def price_pdf(self, laplace: float = 1.0) -> np.ndarray:
        """Laplace-smoothed market-price distribution over 0..MAX_BID, as the published RLB code smooths it."""
        counts = np.zeros(MAX_BID + 1)
        given = np.asarray(self.price_counts, dtype=np.float64)[: MAX_BID + 1]
        counts[: given.size] = given
        return (counts + laplace) / (counts.sum() + counts.size * laplace)


def episode_budget(stats: CampaignStats, budget_ratio: float, horizon: int) -> int:
    """Budget of one episode: ``int(cpm x c0 x T)``, the published rule (cost of c0 of the auctions at the
    training CPM).

    >>> episode_budget(CampaignStats(68.89276127323019, 86552.7, 7.96e-4, np.ones(301)), 1 / 32, 1000)
    2152
    """
    check_scalar(budget_ratio, "budget_ratio", gt=0)
    check_scalar(horizon, "horizon", gt=0)
    return int(stats.cpm * budget_ratio * horizon)


class Bidder(Protocol):
    """The contract every bidder satisfies; arrays have shape (n_episodes,)."""

    name: str

    def start(self, budget: int, horizon: int, n_episodes: int) -> None:
        """New episodes begin, each with ``budget`` to spend over ``horizon`` auctions."""

    def select(self, pctr: np.ndarray, remaining_budget: np.ndarray, remaining_auctions: int) -> np.ndarray:
        """Bids for the current auction; ``remaining_auctions`` counts it (T for the first auction)."""
        ...

    def update(self, won: np.ndarray, cost: np.ndarray, click: np.ndarray) -> None:
        """Outcome of the auction just bid: ``cost`` is 0 where lost, ``click`` is False where lost."""


class _Stateless:
    """Bidders whose bid depends on the predicted CTR only: nothing to start or update."""

    def start(self, budget: int, horizon: int, n_episodes: int) -> None:
        return None

    def update(self, won: np.ndarray, cost: np.ndarray, click: np.ndarray) -> None:
        return None


class MaxCPCBidder(_Stateless):
    """Mcpc: bid the expected value of the impression at the training cost per click, ``pCTR x CPC``.

    >>> MaxCPCBidder().fit(CampaignStats(68.9, 1000.0, 1e-3, np.ones(301))).select(np.array([0.05]), None, 1)
    array([50.])
    """

    name = "mcpc"

    def fit(self, stats: CampaignStats) -> MaxCPCBidder:
        self.cpc_ = stats.cpc
        return self

    def select(self, pctr: np.ndarray, remaining_budget: np.ndarray | None, remaining_auctions: int) -> np.ndarray:
        return np.asarray(pctr, dtype=np.float64) * self.cpc_


class LinearBidder(_Stateless):
    """Lin-bid: ``b0 x pCTR / avg CTR`` (Perlich et al. 2012); ``base_bid`` b0 is tuned on held-out episodes
    (:func:`adpilot.measure.replay.tune_linear`).

    >>> LinearBidder(base_bid=60).fit(CampaignStats(68.9, 1e3, 1e-3, np.ones(301))).select(np.array([2e-3]), None, 1)
    array([120.])
    """

    name = "lin"

    def __init__(self, base_bid: float = 60.0) -> None:
        self.base_bid = base_bid

    def fit(self, stats: CampaignStats) -> LinearBidder:
        check_scalar(self.base_bid, "base_bid", ge=0)
        self.ctr_ = stats.ctr
        return self

    def select(self, pctr: np.ndarray, remaining_budget: np.ndarray | None, remaining_auctions: int) -> np.ndarray:
        # (pCTR x b0) / avg CTR in this order: the published code's rounding, so that int() truncates alike.
        return np.asarray(pctr, dtype=np.float64) * self.base_bid / self.ctr_


def rlb_value_table(horizon: int, budget: int, ctr: float, price_pdf: np.ndarray,
                    max_bid: int = MAX_BID) -> np.ndarray:
    """RLB's optimal value function V(n, b): expected clicks with n auctions left and budget b, every future
    auction assumed to have the average CTR; shape (horizon, budget + 1), row n = n auctions left.

    Bellman: V(n, b) = V(n-1, b) + sum_{d <= min(b, max_bid)} m(d) max(0, ctr + V(n-1, b-d) - V(n-1, b)) — the
    optimal bid wins exactly the prices d whose click value exceeds the budget they cost, which is a prefix of
    d because V is non-decreasing in b. One (budget x max_bid) numpy pass per n. Like the published code, V(n, 0)
    = 0 and values within 1e-10 of the unconstrained optimum n x ctr are set to it.

    >>> v = rlb_value_table(3, 2, 0.5, np.array([0.5, 0.5]), max_bid=1)
    >>> v.tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.75, 1.0]]
    """
    check_scalar(horizon, "horizon", gt=0)
    check_scalar(budget, "budget", ge=0)
    pdf = np.asarray(price_pdf, dtype=np.float64)[: max_bid + 1]
    width = pdf.size
    table = np.zeros((horizon, budget + 1))
    value = np.zeros(budget + 1)
    padded = np.full(budget + width, -np.inf)  # padded[i + width - 1] = V(i); negative budgets never reachable
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)  # windows[b, j] = V(b - (width-1) + j)
    weights = pdf[::-1]  # weights[j] = m(d) with d = width - 1 - j
    best = np.arange(horizon) * ctr * pdf.sum()
    scratch = np.empty(windows.size)  # reused: allocation would double the time of the pass
    budgets = np.arange(budget + 1)
    for n in range(1, horizon):
        padded[width - 1:] = value
        # prices above the largest optimal bid add nothing: keep only d <= max_b a(b), often far below max_bid
        top = int((budgets - np.searchsorted(value, value - ctr, side="left")).max(initial=0))
        keep = min(top, width - 1) + 1
        gain = scratch[: (budget + 1) * keep].reshape(budget + 1, keep)
        np.subtract(windows[:, width - keep:], (value - ctr)[:, None], out=gain)
        np.maximum(gain, 0.0, out=gain)
        value = value + gain @ weights[width - keep:]
        value[0] = 0.0
        reached = np.flatnonzero(np.abs(value[1:] - best[n]) < 1e-10)
        if reached.size:
            value[reached[0] + 2:] = best[n]
        table[n] = value
    return table


class RLBBidder:
    """RLB (Cai et al. 2017): bid the largest d such that pCTR >= V(n-1, b) - V(n-1, b-d), i.e. pay at most the
    value of the budget it costs. The value table is solved once per (budget, horizon) in :meth:`start`.
    """

    name = "rlb"

    def __init__(self, max_bid: int = MAX_BID) -> None:
        self.max_bid = max_bid

    def fit(self, stats: CampaignStats) -> RLBBidder:
        check_scalar(self.max_bid, "max_bid", gt=0)
        self.ctr_ = stats.ctr
        self.price_pdf_ = stats.price_pdf()
        self.value_: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None
        return self

    def start(self, budget: int, horizon: int, n_episodes: int) -> None:
        if self._shape != (horizon, budget):
            self.value_ = rlb_value_table(horizon, budget, self.ctr_, self.price_pdf_, self.max_bid)
            self._shape = (horizon, budget)

    def select(self, pctr: np.ndarray, remaining_budget: np.ndarray, remaining_auctions: int) -> np.ndarray:
        if self.value_ is None:
            raise RuntimeError("RLBBidder.select needs start() first")
        row = self.value_[remaining_auctions - 1]
        b = np.asarray(remaining_budget, dtype=np.int64)
        lowest = np.searchsorted(row, row[b] - np.asarray(pctr, dtype=np.float64), side="left")
        return np.minimum(b - np.minimum(lowest, b), self.max_bid).astype(np.float64)

    def update(self, won: np.ndarray, cost: np.ndarray, click: np.ndarray) -> None:
        return None


class ReSolvingBidder:
    """Ours: linear bidding whose multiplier is re-solved at every auction so that the expected spend of the
    auctions left equals the budget left.

    With prices paid at the market price, the budgeted click maximum is won by bidding ``v x pCTR`` (buy every
    impression whose pCTR / price exceeds 1 / v: the fractional knapsack); Lin-bid fixes v once. Here, with b
    budget and n auctions left, v solves ``n x S(v) = b``, where S(v) is the expected spend of one auction at
    multiplier v estimated from a sample of (pCTR, market price) pairs — so an episode that is running hot or cold
    corrects itself at once, and the budget is spent by the end. Re-solving the fluid LP is the dual-pacing
    policy with bounded regret (Jasin & Kumar 2012; Balseiro et al. 2023); it needs no tuned constant.

    ``fit`` sorts the sample by price / pCTR, the multiplier at which each pair is won: S is then a cumulative
    sum, and v is read off it by interpolation.

    >>> bidder = ReSolvingBidder().fit(np.array([0.1, 0.2, 0.1]), np.array([10, 10, 40]))
    >>> bidder.multiplier_, bidder.spend_.round(2)  # won from v = 50, 100, 400 on; spend per auction
    (array([  0.,  50., 100., 400.]), array([ 0.  ,  3.33,  6.67, 20.  ]))
    >>> bidder.select(np.array([0.1, 0.1]), np.array([20, 1000]), 3)  # 20 over 3 auctions: the two cheap ones
    array([ 10., 300.])
    """

    name = "resolve"

    def fit(self, pctr: np.ndarray, price: np.ndarray) -> ReSolvingBidder:
        """Learn S(v) from paired samples of predicted CTR and market price (e.g. tuning episodes)."""
        pctr, price = np.asarray(pctr, dtype=np.float64).ravel(), np.asarray(price, dtype=np.float64).ravel()
        if pctr.shape != price.shape or pctr.size == 0:
            raise ValueError(f"`pctr` and `price` must be non-empty and of one shape, got {pctr.shape}, {price.shape}")
        if ((pctr < 0) | (pctr > 1)).any() or (price < 0).any():
            raise ValueError("`pctr` must lie in [0, 1] and `price` be >= 0")
        affordable = (price <= MAX_BID) & (pctr > 0)
        ratio = price[affordable] / pctr[affordable]
        order = np.argsort(ratio, kind="stable")
        spend = np.cumsum(price[affordable][order]) / pctr.size
        spend, first = np.unique(np.concatenate([[0.0], spend]), return_index=True)
        self.spend_ = spend
        self.multiplier_ = np.concatenate([[0.0], ratio[order]])[first]
        return self

    def start(self, budget: int, horizon: int, n_episodes: int) -> None:
        return None

    def select(self, pctr: np.ndarray, remaining_budget: np.ndarray, remaining_auctions: int) -> np.ndarray:
        per_auction = np.asarray(remaining_budget, dtype=np.float64) / max(remaining_auctions, 1)
        multiplier = np.interp(per_auction, self.spend_, self.multiplier_, right=np.inf)
        with np.errstate(invalid="ignore"):  # inf x 0 for a zero pCTR: bid nothing
            return np.nan_to_num(multiplier * np.asarray(pctr, dtype=np.float64), nan=0.0, posinf=MAX_BID)

    def update(self, won: np.ndarray, cost: np.ndarray, click: np.ndarray) -> None:
        return None
