"""Auction pricing, bids by strategy, and the pacing controller against a day of known traffic."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.deliver.auction import best_per_group, bids_per_click, run_auction
from adpilot.deliver.pacing import PIPacer


def test_gsp_prices_reserve_and_first_price() -> None:
    rng = np.random.default_rng(0)
    ecpm, bid, pctr = np.array([50.0, 20.0, 5.0, np.nan]), np.array([2.0, 1.0, 0.5, 1.0]), np.full(4, 0.025)
    second = run_auction(ecpm, bid, pctr, reserve_cpm=10.0, rng=rng)
    assert second.order.tolist() == [0, 1]  # 5.0 below the reserve, NaN never ranked
    assert second.price.tolist() == pytest.approx([20 / 25, 10 / 25])  # next eCPM, then the reserve
    first = run_auction(ecpm, bid, pctr, reserve_cpm=10.0, rng=rng, rule="first")
    assert first.price.tolist() == [2.0, 1.0]
    alone = run_auction(np.array([50.0]), np.array([2.0]), np.array([0.025]), 0.0, rng, min_cpc=0.01)
    assert alone.price.tolist() == [0.01]  # no competition: the minimum charge
    with pytest.raises(ValueError, match="`rule`"):
        run_auction(ecpm, bid, pctr, 0.0, rng, rule="vickrey")  # type: ignore[arg-type]


def test_ties_are_broken_by_the_seeded_draw() -> None:
    ecpm, bid, pctr = np.full(2, 10.0), np.ones(2), np.full(2, 0.01)
    winners = [run_auction(ecpm, bid, pctr, 0.0, np.random.default_rng(s)).order[0] for s in range(200)]
    assert 60 < sum(winners) < 140  # both win about half the time
    again = [run_auction(ecpm, bid, pctr, 0.0, np.random.default_rng(s)).order[0] for s in range(200)]
    assert winners == again
    assert best_per_group(np.array([3, 3, 1, 1]), np.array([1.0, 2.0, 5.0, 4.0])).tolist() == [1, 2]


def test_bids_by_strategy() -> None:
    from types import SimpleNamespace

    camps = SimpleNamespace(strategy=np.array([0, 1, 2]), max_cpc=np.array([1.0, 9.0, 2.0]),
                            target_cpa=np.array([0.0, 50.0, 0.0]))
    bids = bids_per_click(camps, np.array([0, 1, 2]), pcvr=np.array([0.5, 0.04, 0.5]),
                          multiplier=np.array([0.3, 0.3, 0.3]))
    assert bids.tolist() == pytest.approx([1.0, 2.0, 0.6])  # manual, oCPC = 50 x 0.04, max clicks shaded


def simulate_day(pacer: PIPacer | None, budget: float, seed: int = 0) -> np.ndarray:
    """One campaign, uniform traffic of 20,000 requests a day, each costing 0.01 if it enters: natural spend
    200, i.e. 4x the budget. Returns the cumulative spend at each hour."""
    rng = np.random.default_rng(seed)
    if pacer is not None:
        pacer.reset(["c"])
    spent, hourly, rows = 0.0, [], np.array([0])
    times = np.sort(rng.uniform(0, 86400, 20_000))
    hour = 0
    for t in times:
        while t >= (hour + 1) * 3600:
            hourly.append(spent)
            hour += 1
        if spent + 0.01 > budget:
            continue
        if pacer is not None:
            pacer.update(rows, np.array([spent]), np.array([budget]), np.array([t / 86400]), now=t)
            if not pacer.select(rows, rng)[0][0]:
                continue
        spent += 0.01
    hourly.extend([spent] * (24 - len(hourly)))
    return np.asarray(hourly)


@pytest.mark.parametrize("budget", [20.0, 50.0, 150.0])
def test_pacing_spreads_the_budget_over_the_day(budget: float) -> None:
    unpaced = simulate_day(None, budget=budget)
    assert unpaced[18] >= budget - 0.01  # without pacing the budget is gone before the evening
    paced = simulate_day(PIPacer(), budget=budget)
    plan = budget * np.arange(1, 25) / 24
    assert paced[-1] >= 0.95 * budget  # still spends (nearly) all of it
    assert np.abs(paced - plan).max() <= 0.05 * budget  # and never strays 5% of the budget from the plan


def test_pacer_validates_and_keeps_state_across_refresh() -> None:
    with pytest.raises(ValueError, match="`min_rate`"):
        PIPacer(min_rate=0)
    with pytest.raises(ValueError, match="`hourly_profile`"):
        PIPacer(hourly_profile=[1.0] * 23)
    p = PIPacer().reset(["a", "b"])
    p.rate_[1] = 0.5
    p.reset(["b", "c"])
    assert p.rate_.tolist() == [0.5, 1.0]
    evening = PIPacer(hourly_profile=[0] * 18 + [1] * 6)
    assert evening.plan(np.array([0.5, 0.875])).tolist() == pytest.approx([0.0, 0.5])


def test_pacer_moves_a_campaign_listed_twice_once_by_its_first_entry() -> None:
    twice, once = PIPacer().reset(["a", "b"]), PIPacer().reset(["a", "b"])
    for now in (3600.0, 7200.0):  # the second update integrates over an hour
        twice.update(np.array([1, 0, 1]), np.array([60.0, 10.0, 0.0]), np.full(3, 100.0), np.full(3, 0.25), now)
        once.update(np.array([1, 0]), np.array([60.0, 10.0]), np.full(2, 100.0), np.full(2, 0.25), now)
    assert twice.rate_.tolist() == once.rate_.tolist()
    assert twice.integral_.tolist() == once.integral_.tolist()
    assert twice.rate_[1] < 1.0 == twice.rate_[0]  # b spent 60% by a quarter of the day: throttled
