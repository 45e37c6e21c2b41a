"""RLB against a line-by-line transcription of the published loops, and the re-solving pacer against brute force
on a simulator that knows the true click probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.deliver.bidding import CampaignStats, LinearBidder, ReSolvingBidder, RLBBidder, rlb_value_table
from adpilot.measure.replay import STRATEGIES, Episodes, evaluate, replay, tune_linear


def published_value_table(horizon, budget, ctr, pdf, max_bid):
    """``RLB_DP_I.calc_optimal_value_function_with_approximation_i`` (gamma = 1, clicks objective), as published."""
    rows, value, best, inc = [], [0.0] * (budget + 1), 0.0, sum(pdf[b] * ctr for b in range(max_bid + 1))
    for _ in range(1, horizon):
        bids, bb = [0] * (budget + 1), budget - 1
        for b in range(budget, 0, -1):
            while bb >= 0 and value[bb] - value[b] + ctr >= 0:
                bb -= 1
            bids[b] = min(max_bid, b) if bb < 0 else min(max_bid, b - bb - 1)
        rows.append(value[:])
        best += inc
        new = [0.0] * (budget + 1)
        for b in range(1, budget + 1):
            new[b] = value[b] + sum(pdf[d] * (ctr + value[b - d] - value[b]) for d in range(bids[b] + 1))
            if abs(new[b] - best) < 1e-10:
                new[b + 1:] = [best] * (budget - b)
                break
        value = new
    rows.append(value)
    return np.array(rows)


def published_bid(table, n, b, theta, max_bid):
    """``RLB_DP_I.bid``: the largest d, scanning up from 1, with theta + V(n-1, b-d) - V(n-1, b) >= 0."""
    a = 0
    for delta in range(1, min(b, max_bid) + 1):
        if theta + table[n - 1][b - delta] - table[n - 1][b] >= 0:
            a = delta
        else:
            break
    return a


def test_rlb_value_table_and_bids_match_the_published_loops():
    rng = np.random.default_rng(3)
    max_bid, horizon, budget, ctr = 12, 25, 60, 0.02
    pdf = rng.dirichlet(np.ones(max_bid + 1))
    ours = rlb_value_table(horizon, budget, ctr, pdf, max_bid)
    np.testing.assert_allclose(ours, published_value_table(horizon, budget, ctr, pdf, max_bid), atol=1e-12)
    bidder = RLBBidder(max_bid=max_bid).fit(CampaignStats(10.0, 100.0, ctr, np.ones(max_bid + 1)))
    bidder.start(budget, horizon, 1)
    bidder.value_ = ours  # same table, now check the bid rule alone
    for n, b, theta in zip(rng.integers(1, horizon + 1, 300), rng.integers(0, budget + 1, 300),
                           rng.uniform(0, 0.1, 300), strict=True):
        assert bidder.select(np.array([theta]), np.array([b]), int(n))[0] == published_bid(ours, n, b, theta, max_bid)


def world(n_episodes: int, horizon: int, seed: int) -> tuple[Episodes, np.ndarray]:
    """Synthetic auctions: lognormal CTRs, market prices that rise with the CTR, clicks drawn from the true CTR."""
    rng = np.random.default_rng(seed)
    ctr = np.clip(np.exp(rng.normal(-6.5, 0.9, (n_episodes, horizon))), 0, 1)
    price = np.clip(np.round(rng.gamma(2.0, 20.0, ctr.shape) * (ctr / 1.5e-3) ** 0.3), 0, 300).astype(np.int64)
    click = rng.random(ctr.shape) < ctr
    return Episodes(click, price, ctr, np.full(n_episodes, horizon), np.arange(1, n_episodes + 1)), ctr


def expected_clicks(bidder, episodes, budget) -> float:
    """True expected clicks of the won impressions (the simulator knows the CTR), a low-noise score."""
    won_ctr = []
    bidder.start(budget, episodes.horizon, len(episodes))
    left = np.full(len(episodes), budget)
    for t in range(episodes.horizon):
        bid = np.minimum(np.trunc(np.clip(bidder.select(episodes.pctr[:, t], left, episodes.horizon - t), 0, 300)),
                         left)
        won = bid >= episodes.price[:, t]
        left = left - np.where(won, episodes.price[:, t], 0)
        won_ctr.append(np.where(won, episodes.pctr[:, t], 0.0))
    return float(np.sum(won_ctr))


def test_resolving_spend_curve_matches_brute_force():
    log, _ = world(4, 200, seed=1)
    bidder = ReSolvingBidder().fit(log.pctr, log.price)
    for v in (1e3, 1e4, 3e4, 1e5):
        bids = np.trunc(np.clip(v * log.pctr, 0, 300))
        brute = np.where(log.price <= bids, log.price, 0).mean()
        # S at v: spend of every pair whose price / pCTR <= v, read off the curve below v
        assert bidder.spend_[np.searchsorted(bidder.multiplier_, v, side="right") - 1] == pytest.approx(brute,
                                                                                                        rel=0.02)


def test_resolving_spends_the_budget_and_beats_tuned_lin_on_the_truth():
    tune, _ = world(40, 500, seed=11)
    test, _ = world(40, 500, seed=12)
    stats = CampaignStats(cpm=float(tune.price.mean()), cpc=1e4, ctr=float(tune.pctr.mean()),
                          price_counts=np.bincount(tune.price.ravel(), minlength=301))
    budget = int(stats.cpm * 500 / 16)
    pacer = ReSolvingBidder().fit(tune.pctr, tune.price)
    result = replay(pacer, test, budget)
    assert result.spend.max() <= budget
    assert result.totals()["budget_used"] > 0.97
    lin = tune_linear(stats, tune, budget)
    assert expected_clicks(pacer, test, budget) > 1.03 * expected_clicks(lin, test, budget)


def test_same_input_same_output_and_cross_fitting_uses_both_halves():
    log, _ = world(6, 100, seed=5)
    stats = CampaignStats(cpm=float(log.price.mean()), cpc=1e4, ctr=float(log.pctr.mean()),
                          price_counts=np.bincount(log.price.ravel(), minlength=301))
    budget = int(stats.cpm * 100 / 8)
    first, again = (evaluate("lin", stats, log, budget) for _ in range(2))
    np.testing.assert_array_equal(first.result.clicks, again.result.clicks)
    assert len(first.result.clicks) == 6 and first.tuned.count("b0=") == 2
    assert isinstance(tune_linear(stats, log, budget), LinearBidder)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_registered_strategy_keeps_the_contract(name):
    """Shared conformance: deterministic, within budget, bids >= 0 of one per episode, a batch of one works."""
    tune, _ = world(4, 120, seed=7)
    test, _ = world(3, 120, seed=8)
    stats = CampaignStats(cpm=float(tune.price.mean()), cpc=2e4, ctr=float(tune.pctr.mean()),
                          price_counts=np.bincount(tune.price.ravel(), minlength=301))
    budget = int(stats.cpm * 120 / 16)
    bidder = STRATEGIES[name].build(stats, tune, budget)
    first, second = replay(bidder, test, budget), replay(bidder, test, budget)
    np.testing.assert_array_equal(first.clicks, second.clicks)
    np.testing.assert_array_equal(first.spend, second.spend)
    assert (first.spend <= budget).all() and first.impressions.sum() > 0
    bidder.start(budget, 120, 1)
    bids = bidder.select(test.pctr[0, :1], np.array([budget]), 120)
    assert bids.shape == (1,) and bids[0] >= 0
    bidder.update(np.array([True]), np.array([3]), np.array([False]))
