"""Both counters backends pass the same checks; the Redis one against a real redis-server on loopback."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

from adpilot.deliver.base import CountersUnavailable
from adpilot.deliver.counters import InProcessCounters, RedisCounters
from redis_support import redis_server

DAY = "2026-03-02"


def hold(counters, campaign_id: str, day: str, amount: float, total_budget: float, daily_budget: float,
         reservation_id: str, expires_at: float, now: float) -> bool:
    """A placement with no user and no creatives: only the budget is held."""
    placement = counters.place(campaign_id, day, amount, total_budget, daily_budget, reservation_id, expires_at, now,
                               None, 0, 0, ())
    return placement.outcome == "placed"


_placements = itertools.count()


def expose(counters, user_id: str, campaign_id: str, day: str, cap_daily: int, cap_lifetime: int) -> bool:
    """A placement on an unlimited budget: only the user's exposure counts (if the campaign has a cap)."""
    rid = f"x{next(_placements)}"
    return counters.place(campaign_id, day, 0.0, 1e18, 1e18, rid, 1e12, 0.0, user_id, cap_daily, cap_lifetime,
                          ()).outcome == "placed"


def served(counters, user_id: str, campaign_ids: list[str], days: list[str]) -> tuple[list[int], list[int]]:
    """The user's (today, lifetime) counts of each campaign, through the engine's admission read."""
    state = counters.admission_state(campaign_ids, days, 0.0, user_id, list(range(len(campaign_ids))))
    return state.served_today.tolist(), state.served_lifetime.tolist()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with redis_server(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> InProcessCounters | RedisCounters:
    if request.param == "memory":
        return InProcessCounters()
    return RedisCounters(request.getfixturevalue("redis_url"), prefix=f"t{id(request)}")


def test_reserve_respects_total_and_daily_budget(counters) -> None:
    assert hold(counters, "c", DAY, 0.6, 1.0, 5.0, "r1", 100.0, 0.0)
    assert not hold(counters, "c", DAY, 0.6, 1.0, 5.0, "r2", 100.0, 0.0)  # total budget 1.0
    assert hold(counters, "c", DAY, 0.4, 1.0, 5.0, "r3", 100.0, 0.0)
    assert hold(counters, "d", DAY, 2.0, 9.0, 2.0, "r1", 100.0, 0.0)
    assert not hold(counters, "d", DAY, 0.5, 9.0, 2.0, "r2", 100.0, 0.0)  # daily budget 2.0
    assert hold(counters, "d", "2026-03-03", 0.5, 9.0, 2.5, "r3", 100.0, 0.0)  # reservations count every day
    assert not hold(counters, "c", DAY, 0.0, 1.0, 5.0, "r1", 100.0, 0.0)  # same reservation twice


def test_commit_release_and_expiry(counters) -> None:
    assert hold(counters, "c", DAY, 0.3, 1.0, 1.0, "r1", 100.0, 0.0)
    assert hold(counters, "c", DAY, 0.3, 1.0, 1.0, "r2", 100.0, 0.0)
    assert hold(counters, "c", DAY, 0.3, 1.0, 1.0, "r3", 10.0, 0.0)
    assert counters.commit("c", "r1", now=50.0) == pytest.approx(0.3)
    assert counters.commit("c", "r1", now=50.0) is None  # committed once only
    counters.release("c", "r2")
    total, day, reserved = counters.budget_state(["c"], [DAY], now=50.0)  # r3 expired at 10
    assert (total[0], day[0], reserved[0]) == pytest.approx((0.3, 0.3, 0.0))
    assert counters.commit("c", "r3", now=50.0) is None
    total, day, reserved = counters.budget_state(["c", "unknown"], [DAY, DAY], now=50.0)
    assert total.tolist() == pytest.approx([0.3, 0.0])


def test_concurrent_reservations_never_overspend(counters) -> None:
    budget, price, n_threads, per_thread = 10.0, 0.37, 8, 25
    granted: list[int] = []

    def work(t: int) -> None:
        ok = 0
        for i in range(per_thread):
            if hold(counters, "c", DAY, price, budget, budget, f"r{t}-{i}", 1e12, 0.0):
                ok += 1
                if i % 2 == 0:
                    counters.commit("c", f"r{t}-{i}", now=1.0)
        granted.append(ok)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total, _, reserved = counters.budget_state(["c"], [DAY], now=1.0)
    assert sum(granted) == int(budget // price)  # exactly as many as fit, no more
    assert total[0] + reserved[0] <= budget + 1e-9


def test_frequency_caps(counters) -> None:
    assert expose(counters, "u", "c", DAY, 2, 3)
    assert expose(counters, "u", "c", DAY, 2, 3)
    assert not expose(counters, "u", "c", DAY, 2, 3)  # daily cap
    assert expose(counters, "u", "c", "2026-03-03", 2, 3)
    assert not expose(counters, "u", "c", "2026-03-04", 2, 3)  # lifetime cap
    assert expose(counters, "u", "c", "2026-03-04", 0, 0)  # no caps: placed, and not counted
    assert served(counters, "u", ["c", "other"], ["2026-03-03", DAY]) == ([1, 0], [3, 0])


def test_dedup_and_bandit_counts(counters) -> None:
    assert counters.first_seen("tok:click", ttl_s=60, now=0.0)
    assert not counters.first_seen("tok:click", ttl_s=60, now=1.0)
    counters.add_bandit("cr1", 10, 2)
    counters.add_bandit("cr1", 1, 0)
    impressions, clicks = counters.bandit_counts(["cr1", "cr2"])
    assert impressions.tolist() == [11, 0] and clicks.tolist() == [2, 0]


def test_redis_that_goes_away_raises_unavailable(tmp_path) -> None:
    try:
        with redis_server(tmp_path) as url:
            counters = RedisCounters(url, socket_timeout_s=0.2)
            assert hold(counters, "c", DAY, 1.0, 5.0, 5.0, "r1", 100.0, 0.0)
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    with pytest.raises(CountersUnavailable):
        hold(counters, "c", DAY, 1.0, 5.0, 5.0, "r2", 100.0, 0.0)
    with pytest.raises(CountersUnavailable):
        counters.budget_state(["c"], [DAY], now=0.0)


def test_admission_state_reads_budgets_and_the_users_counts(counters) -> None:
    assert hold(counters, "c", DAY, 0.5, 9.0, 9.0, "r1", 100.0, 0.0)
    assert expose(counters, "u", "d", DAY, 0, 9)
    assert expose(counters, "u", "d", "2026-03-03", 0, 9)
    ids, days = ["c", "d", "e"], [DAY, "2026-03-03", DAY]
    state = counters.admission_state(ids, days, 1.0, "u", [1, 2])
    budget = counters.budget_state(ids, days, 1.0)
    for got, want in zip(state[:3], budget, strict=True):
        assert got.tolist() == pytest.approx(want.tolist())
    assert state.reserved.tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert state.served_today.tolist() == [1, 0] and state.served_lifetime.tolist() == [2, 0]  # d, e
    anonymous = counters.admission_state(ids, days, 1.0, None, [1, 2])
    assert len(anonymous.served_today) == 0 and len(anonymous.served_lifetime) == 0
    assert len(counters.admission_state([], [], 1.0, "u", []).spent_total) == 0


def test_admission_keeps_budget_state_briefly_and_place_still_refuses_an_overspend(redis_url) -> None:
    ours = RedisCounters(redis_url, prefix="ttl", budget_ttl_s=60.0)
    other = RedisCounters(redis_url, prefix="ttl")  # another server process
    assert ours.admission_state(["c", "d"], [DAY, DAY], 1.0, "u", [1]).reserved.tolist() == [0.0, 0.0]
    assert hold(other, "c", DAY, 0.9, 1.0, 1.0, "r1", 100.0, 1.0)
    assert expose(other, "u", "d", DAY, 0, 5)
    state = ours.admission_state(["c", "d"], [DAY, DAY], 1.0, "u", [1])
    assert state.reserved.tolist() == [0.0, 0.0]  # the budgets as read a moment ago ...
    assert state.served_today.tolist() == [1] and state.served_lifetime.tolist() == [1]  # ... the counts fresh
    assert not hold(ours, "c", DAY, 0.2, 1.0, 1.0, "r2", 100.0, 1.0)  # the stale state cannot overspend
    assert ours.admission_state(["c"], [DAY], 1.0, None, []).reserved.tolist() == pytest.approx([0.9])  # re-read
    assert hold(ours, "d", DAY, 0.25, 1.0, 1.0, "r3", 100.0, 1.0)
    assert ours.admission_state(["d"], [DAY], 1.0, None, []).reserved.tolist() == pytest.approx([0.25])  # own hold
    assert ours.admission_state(["c"], [DAY], 100.5, None, []).reserved.tolist() == [0.0]  # a later now: re-read
    fresh = RedisCounters(redis_url, prefix="ttl", budget_ttl_s=0.0)
    assert fresh.admission_state(["d"], [DAY], 1.0, None, []).reserved.tolist() == pytest.approx([0.25])
    assert hold(other, "d", DAY, 0.5, 1.0, 1.0, "r4", 100.0, 1.0)
    assert fresh.admission_state(["d"], [DAY], 1.0, None, []).reserved.tolist() == pytest.approx([0.75])


def test_place_writes_budget_and_frequency_together_or_neither(counters) -> None:
    counters.add_bandit("cr1", 7, 2)
    placed = counters.place("c", DAY, 0.4, 1.0, 1.0, "r1", 100.0, 0.0, "u", 0, 1, ["cr1", "cr2"])
    assert placed.outcome == "placed"
    assert placed.impressions.tolist() == [7, 0] and placed.clicks.tolist() == [2, 0]
    # the lifetime cap of 1 is taken: refused, and the budget is not held for it
    assert counters.place("c", DAY, 0.4, 1.0, 1.0, "r2", 100.0, 0.0, "u", 0, 1, ["cr1"]).outcome == "frequency"
    assert counters.budget_state(["c"], [DAY], 0.0)[2].tolist() == pytest.approx([0.4])
    # over budget: refused, and the exposure is not counted for it
    assert counters.place("c", DAY, 0.7, 1.0, 1.0, "r3", 100.0, 0.0, "v", 0, 1, ()).outcome == "budget"
    assert served(counters, "v", ["c"], [DAY])[1] == [0]
    assert counters.place("c", DAY, 0.1, 1.0, 1.0, "r1", 100.0, 0.0, "v", 0, 1, ()).outcome == "budget"  # same id
    uncapped = counters.place("c", DAY, 0.1, 1.0, 1.0, "r4", 100.0, 0.0, "u", 0, 0, ())
    assert uncapped.outcome == "placed" and len(uncapped.impressions) == 0
    assert served(counters, "u", ["c"], [DAY])[1] == [1]  # uncapped campaigns are not counted
    assert counters.commit("c", "r1", now=1.0) == pytest.approx(0.4)


def test_concurrent_placements_never_exceed_a_cap(counters) -> None:
    placed: list[str] = []

    def work(t: int) -> None:
        for i in range(10):
            if counters.place("c", DAY, 0.01, 100.0, 100.0, f"r{t}-{i}", 1e12, 0.0, "u", 2, 5, ()).outcome == "placed":
                placed.append(f"r{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(placed) == 2  # the daily cap, exactly
    assert counters.budget_state(["c"], [DAY], 0.0)[2].tolist() == pytest.approx([0.02])


def test_redis_scripts_are_loaded_again_after_a_flush(redis_url: str) -> None:
    """The decision path's scripts go over the lean connection by sha; a Redis that forgot them (restart,
    SCRIPT FLUSH) gets them again instead of failing the request."""
    import redis

    counters = RedisCounters(redis_url, prefix="flush")
    assert hold(counters, "c", DAY, 1.0, 5.0, 5.0, "r1", 100.0, 0.0)
    redis.Redis.from_url(redis_url).script_flush()
    assert hold(counters, "c", DAY, 1.0, 5.0, 5.0, "r2", 100.0, 0.0)
    assert counters.budget_state(["c"], [DAY], now=1.0)[2].tolist() == [2.0]  # both reservations held


def test_redis_url_database_and_errors_are_honoured(redis_url: str) -> None:
    """``/3`` in the URL puts the decision path's keys in database 3, as redis-py does for the other calls;
    a script error is raised as an error, not taken for an unreachable Redis."""
    import redis

    from adpilot.deliver.resp import ReplyError, ScriptConnection

    counters = RedisCounters(f"{redis_url}/3", prefix="db")
    assert hold(counters, "c", DAY, 1.0, 5.0, 5.0, "r1", 100.0, 0.0)
    assert redis.Redis.from_url(f"{redis_url}/3").keys("db:budget:*")
    assert not redis.Redis.from_url(f"{redis_url}/0").keys("db:budget:*")
    lean = ScriptConnection(redis_url, 0.5)
    with pytest.raises(ReplyError, match="NOSCRIPT"):
        lean.evalsha("0" * 40, [], [])
    assert lean.call("PING") == b"PONG"  # the connection survives an error reply
