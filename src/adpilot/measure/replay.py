"""Replay of bidders on logged RTB auctions (the iPinYou protocol of Cai et al., WSDM 2017).

Each episode is T auctions ``(click, market price, pCTR)`` with its own budget B = int(CPM_train x c0 x T),
reset every episode. A bid is truncated to an integer and capped at 300 and at the remaining budget; it wins
when bid >= market price and pays the market price; a won impression brings its logged click. All episodes run
side by side, one numpy step per auction position.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from adpilot.deliver.bidding import (
    MAX_BID,
    Bidder,
    CampaignStats,
    LinearBidder,
    MaxCPCBidder,
    ReSolvingBidder,
    RLBBidder,
)
from adpilot.errors import InputFileError, UserError
from adpilot.measure.intervals import Interval, bootstrap_interval

_NO_AUCTION = np.iinfo(np.int64).max // 4  # market price of padding after a short episode: never won


@dataclass(frozen=True)
class Episodes:
    """Auction logs cut into episodes, padded to the horizon; arrays have shape (n_episodes, horizon)."""

    click: np.ndarray  # bool
    price: np.ndarray  # int64, _NO_AUCTION after an episode's end
    pctr: np.ndarray  # float64
    length: np.ndarray  # (n_episodes,) auctions in each episode
    number: np.ndarray  # (n_episodes,) the episode numbers of the file (1-based position for flat logs)

    @property
    def horizon(self) -> int:
        return self.click.shape[1]

    def __len__(self) -> int:
        return self.click.shape[0]

    def subset(self, rows: np.ndarray) -> Episodes:
        """The episodes at positions ``rows`` (an index or boolean mask)."""
        return Episodes(self.click[rows], self.price[rows], self.pctr[rows], self.length[rows], self.number[rows])


def read_episodes(path: str | Path, horizon: int = 1000) -> Episodes:
    """Read an auction log, either the rlb-dp episode format (a ``<feature dim> <T>`` line, then per episode a
    line with its number followed by its ``click price pCTR`` lines; parsed by
    :func:`adpilot.datasets.ipinyou.read_episodes_file`) or a flat ``click price pCTR`` log (``test.theta.txt``),
    which is cut into consecutive episodes of ``horizon`` auctions as the authors do.
    """
    from adpilot.datasets.ipinyou import read_episodes_file

    path = Path(path)
    try:
        with path.open() as handle:
            first = handle.readline().split()
        if len(first) == 2:
            horizon = int(first[1])
            _, episode, values = read_episodes_file(path)
            number, episode_of = np.unique(episode, return_inverse=True)
        elif len(first) == 3:
            values = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64).to_numpy()
            episode_of = np.arange(len(values)) // horizon
            number = np.arange(1, episode_of[-1] + 2)
        else:
            raise InputFileError(f"{path} is neither an episode file nor a `click price pCTR` log: first line "
                                 f"{' '.join(first)!r}")
    except (OSError, ValueError, IndexError, pd.errors.ParserError) as error:
        raise InputFileError(f"cannot read auction log {path}: {error}") from error
    if not len(values) or values.shape[1] != 3 or np.isnan(values).any():
        raise InputFileError(f"{path} must hold `click price pCTR` rows with three numbers each")
    click, price, pctr = values.T
    if not np.isin(click, (0, 1)).all() or (price < 0).any() or (price != np.round(price)).any() \
            or ((pctr < 0) | (pctr > 1)).any():
        raise InputFileError(f"{path}: clicks must be 0/1, market prices integers >= 0 and pCTR in [0, 1]")
    length = np.bincount(episode_of, minlength=number.size)
    if length.max() > horizon:
        raise InputFileError(f"{path} has an episode of {length.max()} auctions, more than T = {horizon}")
    order = np.argsort(episode_of, kind="stable")  # an episode's auctions in file order, episodes by number
    column = np.empty(len(values), np.int64)
    column[order] = np.arange(len(values)) - np.repeat(np.cumsum(length) - length, length)
    shape = (number.size, horizon)
    grid = Episodes(np.zeros(shape, bool), np.full(shape, _NO_AUCTION, np.int64), np.zeros(shape), length, number)
    grid.click[episode_of, column] = click == 1
    grid.price[episode_of, column] = price.astype(np.int64)
    grid.pctr[episode_of, column] = pctr
    return grid


def read_campaign_stats(path: str | Path) -> CampaignStats:
    """Training-period statistics from an rlb-dp ``info.json`` (``cost_train``, ``imp_train``, ``clk_train``,
    ``price_counter_train``) or a ``<camp>.train-info.txt`` (``CPC:``, ``CPM:``, ``avg ctr:``, ``counter:``)."""
    path = Path(path)
    try:
        text = path.read_text()
        if text.lstrip().startswith("{"):
            info = json.loads(text)
            cost, imps, clicks = info["cost_train"], info["imp_train"], info["clk_train"]
            return CampaignStats(cost / imps, cost / clicks, clicks / imps,
                                 np.asarray(info["price_counter_train"], dtype=np.float64))
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        return CampaignStats(float(fields["CPM"]) / 1000, float(fields["CPC"]), float(fields["avg ctr"]),
                             np.array(fields["counter"].strip().split("_"), dtype=np.float64))
    except KeyError as error:
        raise InputFileError(f"training info {path} lacks the field {error}") from error
    except (OSError, ValueError, TypeError, ZeroDivisionError) as error:
        raise InputFileError(f"cannot read training info {path}: {error}") from error


def parse_ratio(text: str, name: str = "budget-ratio") -> float:
    """Parse ``1/32``, ``0.03125`` or ``3.125%`` into a float in (0, 1]; a bad value names the parameter.

    >>> parse_ratio("1/32"), parse_ratio("0.125")
    (0.03125, 0.125)
    """
    try:
        value = float(Fraction(text.strip().rstrip("%"))) / (100 if text.strip().endswith("%") else 1)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"`{name}` must be a fraction such as 1/32 or a number such as 0.03125, got {text!r}") from None
    if not 0 < value <= 1:
        raise UserError(f"`{name}` must be in (0, 1], got {text!r}")
    return value


@dataclass(frozen=True)
class ReplayResult:
    """Per-episode outcomes of one replay, shape (n_episodes,) each."""

    clicks: np.ndarray
    impressions: np.ndarray
    spend: np.ndarray
    auctions: np.ndarray
    budget: int

    def totals(self) -> dict[str, float]:
        """Clicks, impressions, win rate, spend, CPM and eCPC over all episodes, in the published units: prices
        are CPM in fen, so spend / impressions is the CPM and spend / 1000 / clicks the cost per click in fen."""
        clicks, imps, spend = int(self.clicks.sum()), int(self.impressions.sum()), int(self.spend.sum())
        return {"episodes": len(self.clicks), "auctions": int(self.auctions.sum()), "clicks": clicks,
                "impressions": imps, "win_rate": imps / max(int(self.auctions.sum()), 1), "spend": spend,
                "budget_used": spend / max(self.budget * len(self.clicks), 1),
                "cpm": spend / imps if imps else float("nan"),
                "ecpc": spend / 1000 / clicks if clicks else float("nan")}

    def clicks_interval(self, level: float = 0.95, random_state: int | None = 0) -> Interval:
        """Bootstrap interval over episodes of the total clicks (episodes resampled with replacement)."""
        return bootstrap_interval(lambda idx: self.clicks[idx].sum(axis=1), len(self.clicks),
                                  estimate=float(self.clicks.sum()), level=level, random_state=random_state)

    def __add__(self, other: ReplayResult) -> ReplayResult:
        """Pool two replays of disjoint episodes (e.g. the two out-of-sample halves)."""
        if self.budget != other.budget:
            raise ValueError(f"cannot pool replays with budgets {self.budget} and {other.budget}")
        def pooled(name: str) -> np.ndarray:
            return np.concatenate([getattr(self, name), getattr(other, name)])

        return ReplayResult(pooled("clicks"), pooled("impressions"), pooled("spend"), pooled("auctions"), self.budget)


BidRule = Callable[[int, np.ndarray], np.ndarray]  # (auction position t, remaining budgets) -> bids


def _simulate(episodes: Episodes, budget: int, bid_rule: BidRule,
              observe: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> ReplayResult:
    """The protocol loop shared by every replay: cap, win, pay, count; each row is its own episode and budget."""
    if budget < 0:
        raise ValueError(f"`budget` must be >= 0, got {budget}")
    n = len(episodes)
    remaining = np.full(n, budget, dtype=np.int64)
    clicks, imps = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for t in range(episodes.horizon):
        bids = np.asarray(bid_rule(t, remaining), dtype=np.float64)
        if np.isnan(bids).any():
            raise ValueError(f"a bidder returned NaN bids at auction {t}")
        bids = np.minimum(np.trunc(np.clip(bids, 0, MAX_BID)).astype(np.int64), remaining)
        price = episodes.price[:, t]
        won = bids >= price
        cost = np.where(won, price, 0)
        remaining -= cost
        clicked = won & episodes.click[:, t]
        imps += won
        clicks += clicked
        if observe is not None:
            observe(won, cost, clicked)
    return ReplayResult(clicks, imps, budget - remaining, episodes.length.copy(), budget)


def replay(bidder: Bidder, episodes: Episodes, budget: int) -> ReplayResult:
    """Run a fitted bidder over all episodes at once under the published protocol."""
    horizon = episodes.horizon
    bidder.start(budget, horizon, len(episodes))
    return _simulate(episodes, budget, lambda t, left: bidder.select(episodes.pctr[:, t], left, horizon - t),
                     bidder.update)


def tune_linear(stats: CampaignStats, episodes: Episodes, budget: int, step: int = 6,
                patience: int = 5) -> LinearBidder:
    """Lin-bid's base bid by the published search: b0 = 6, 12, ... up to 300 keeping the best clicks (ties go to
    the larger b0), stopping after ``patience`` worse values in a row; when 300 is best the search goes on past
    it while clicks do not drop (and bids still change). All candidates of a chunk replay side by side.
    """
    if len(episodes) == 0:
        raise UserError("Lin-bid needs tuning episodes, and the tuning log has none")
    tuner = LinearBidder().fit(stats)

    def clicks_for(candidates: np.ndarray) -> np.ndarray:
        k = len(candidates)
        tiled = Episodes(np.tile(episodes.click, (k, 1)), np.tile(episodes.price, (k, 1)),
                         np.tile(episodes.pctr, (k, 1)) * np.repeat(candidates, len(episodes))[:, None] / tuner.ctr_,
                         np.tile(episodes.length, k), np.tile(episodes.number, k))
        result = _simulate(tiled, budget, lambda t, left: tiled.pctr[:, t])
        return result.clicks.reshape(k, -1).sum(axis=1)

    grid = np.arange(step, MAX_BID + step, step, dtype=np.float64)
    best_clicks, best, worse = -1, grid[0], 0
    for b0, clicks in zip(grid, clicks_for(grid), strict=True):
        if clicks >= best_clicks:
            best_clicks, best, worse = clicks, b0, 0
        else:
            worse += 1
            if worse >= patience:
                break
    positive = episodes.pctr[episodes.pctr > 0]
    saturated = MAX_BID * tuner.ctr_ / positive.min() if positive.size else 0.0  # every bid at the cap beyond it
    while best == grid[-1] and best < saturated:
        grid = grid[-1] + step * np.arange(1, 51, dtype=np.float64)
        for b0, clicks in zip(grid, clicks_for(grid), strict=True):
            if clicks < best_clicks:
                break
            best_clicks, best = clicks, b0
    return LinearBidder(base_bid=float(best)).fit(stats)


@dataclass(frozen=True)
class Strategy:
    """A bidding strategy as the replay builds it: from the training statistics, the tuning episodes (None for
    strategies that tune nothing) and the episode budget."""

    name: str
    build: Callable[[CampaignStats, Episodes | None, int], Bidder]
    tunes: bool
    describe: Callable[[Bidder], str] = lambda bidder: ""


def _tuning(episodes: Episodes | None) -> Episodes:
    """The tuning episodes of a strategy that tunes (the replay passes None only to those that do not)."""
    if episodes is None:
        raise ValueError("this strategy tunes on a log's tuning episodes, and none were given")
    return episodes


def _auctions(episodes: Episodes | None) -> tuple[np.ndarray, np.ndarray]:
    """(pCTR, market price) of every real auction of the tuning episodes, padding dropped."""
    episodes = _tuning(episodes)
    real = episodes.length[:, None] > np.arange(episodes.horizon)
    return episodes.pctr[real], episodes.price[real]


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("mcpc", lambda stats, tune, budget: MaxCPCBidder().fit(stats), tunes=False),
    Strategy("lin", lambda stats, tune, budget: tune_linear(stats, _tuning(tune), budget), tunes=True,
             describe=lambda bidder: f"b0={getattr(bidder, 'base_bid', float('nan')):g}"),
    Strategy("rlb", lambda stats, tune, budget: RLBBidder().fit(stats), tunes=False),
    Strategy("resolve", lambda stats, tune, budget: ReSolvingBidder().fit(*_auctions(tune)), tunes=True),
)}


@dataclass(frozen=True)
class Evaluation:
    """One strategy on one log: the pooled out-of-sample replay and what tuning chose."""

    strategy: str
    result: ReplayResult
    tuned: str


def halves(episodes: Episodes) -> list[tuple[Episodes, Episodes]]:
    """(tune, test) folds: even-numbered episodes tune for the odd ones, and the reverse."""
    even = episodes.number % 2 == 0
    return [(episodes.subset(even), episodes.subset(~even)), (episodes.subset(~even), episodes.subset(even))]


def evaluate(strategy: str, stats: CampaignStats, episodes: Episodes, budget: int,
             tune: Episodes | None = None) -> Evaluation:
    """Replay ``strategy`` out of sample: tuned on ``tune`` and replayed on all ``episodes`` when ``tune`` is
    given, otherwise cross-fitted on the two halves of ``episodes`` (:func:`halves`) and pooled. Strategies that
    tune nothing replay every episode once.
    """
    if strategy not in STRATEGIES:
        raise UserError(f"`strategy` must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    spec = STRATEGIES[strategy]
    if not spec.tunes or tune is not None:
        bidder = spec.build(stats, tune, budget)
        return Evaluation(strategy, replay(bidder, episodes, budget), spec.describe(bidder))
    folds = [(fold_tune, fold_test) for fold_tune, fold_test in halves(episodes) if len(fold_test)]
    if len(folds) < 2:
        raise UserError(f"`{strategy}` tunes on half of the log when no --tune-log is given; the log needs at "
                        f"least one even- and one odd-numbered episode, got {len(episodes)} episode(s)")
    bidders = [spec.build(stats, fold_tune, budget) for fold_tune, _ in folds]
    result = replay(bidders[0], folds[0][1], budget) + replay(bidders[1], folds[1][1], budget)
    return Evaluation(strategy, result, " / ".join(filter(None, (spec.describe(b) for b in bidders))))
