"""Two engines (as two server processes would) sharing budgets and caps in one real redis-server; and a Redis
that goes away mid-traffic: no-fill with the reason, never a crash or an overspend."""

from __future__ import annotations

import threading

import pytest
from deliver_world import NOON, make_world

from adpilot.config import Settings
from adpilot.deliver.counters import RedisCounters
from adpilot.deliver.engine import DecisionEngine, EngineConfig
from adpilot.deliver.feedback import AdEvent
from adpilot.schema import AdRequest
from redis_support import redis_server

SETTINGS = Settings(mode="test", token_secret="deliver-test-secret-0123")


def test_engines_sharing_redis_never_overspend_and_fail_safe(tmp_path) -> None:
    overrides = {i: {"total_budget": 2.0, "daily_budget": 2.0, "freq_cap_lifetime": 3} for i in range(6)}
    snapshot = make_world(campaign_overrides=overrides)
    config = EngineConfig(pacing=False)
    try:
        server = redis_server(tmp_path)
        url = server.__enter__()
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    try:
        engines = [DecisionEngine(snapshot, RedisCounters(url, prefix="shared"), SETTINGS, config=config)
                   for _ in range(2)]
        served: list[tuple[str, str]] = []
        tokens: list[str] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            engine = engines[t % 2]
            for i in range(25):
                user = f"u{(t + i) % 5}"
                for ad in engine.decide(AdRequest(request_id=f"t{t}-{i}", user_id=user, slot="home", ts=NOON,
                                                  n_ads=3)).ads:
                    engines[(t + 1) % 2].record(AdEvent(ad.token, "click", ts=NOON.timestamp() + 1))  # other server
                    with lock:
                        served.append((user, ad.campaign_id))
                        tokens.append(ad.token)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [f"c{i}" for i in range(6)]
        total, _, reserved = engines[0].counters.budget_state(ids, ["2026-03-02"] * 6, NOON.timestamp() + 2)
        assert (total + reserved <= 2.0 + 1e-9).all() and total.sum() > 0
        for pair in set(served):
            assert served.count(pair) <= 3  # the lifetime cap holds across both engines
    finally:
        server.__exit__(None, None, None)
    gone = engines[0].decide(AdRequest(request_id="after", user_id="u1", slot="home", ts=NOON))
    assert gone.ads == [] and "counters unavailable" in gone.no_fill_reason
    late = engines[0].record(AdEvent(tokens[0], "impression", ts=NOON.timestamp() + 3))
    assert not late.accepted and "counters unavailable" in late.reason
