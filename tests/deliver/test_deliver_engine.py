"""The decision path end to end on a small seeded world: fills, explanations, every bad input, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from deliver_world import NOON, NaNScorer, make_world, targeting

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine, EngineConfig
from adpilot.deliver.feedback import AdEvent
from adpilot.schema import AdRequest

SETTINGS = Settings(mode="test", token_secret="deliver-test-secret-0123")


def request(rid: str = "r1", **kwargs) -> AdRequest:
    return AdRequest(request_id=rid, slot=kwargs.pop("slot", "home"), ts=kwargs.pop("ts", NOON), **kwargs)


def engine(snapshot=None, **kwargs) -> DecisionEngine:
    return DecisionEngine(snapshot if snapshot is not None else make_world(), settings=SETTINGS, **kwargs)


def test_fills_with_the_users_interest_first_and_explains() -> None:
    eng = engine()
    decision = eng.decide(request(user_id="u1", n_ads=3, explain=True))
    assert len(decision.ads) == 3 and decision.no_fill_reason is None
    assert decision.ads[0].campaign_id == "c1"  # u1's interests are near campaign 1's products
    assert len({a.campaign_id for a in decision.ads}) == 3  # one ad per campaign
    assert [a.ecpm for a in decision.ads] == sorted((a.ecpm for a in decision.ads), reverse=True)
    for a, b in zip(decision.ads, decision.ads[1:], strict=False):
        assert a.price == pytest.approx(max(b.ecpm / (1000 * a.pctr), 0.01))  # generalised second price
    ex = decision.explanation
    assert ex["user"]["personalised"] and ex["retrieval"]["ann"] > 0
    assert ex["scored"][0]["ad_id"] == decision.ads[0].ad_id
    assert ex["removed"]["same_campaign_better_ad"]["count"] > 0
    assert eng.decide(request(user_id="u1", n_ads=3)).explanation is None


def test_same_seed_same_decision_and_first_price_option() -> None:
    snap = make_world()
    a = engine(snap, seed=3).decide(request(user_id="u2", n_ads=2))
    b = engine(snap, seed=3).decide(request(user_id="u2", n_ads=2))
    assert [x.ad_id for x in a.ads] == [x.ad_id for x in b.ads]
    first = engine(snap, config=EngineConfig(price_rule="first")).decide(request(user_id="u2"))
    assert first.ads[0].price == pytest.approx(1.2)  # campaign 2 bids max_cpc 1.2 and pays it


def test_decisions_do_not_depend_on_the_row_order_of_the_inputs() -> None:
    """A store returns rows in no set order (an upsert writes them from parallel threads), and snapshot rows are the
    order in which the engine breaks ties: the same tables must give the same decisions in any order."""
    equal_bids = {i: {"max_cpc": 1.0} for i in range(6)}  # anonymous requests then tie on eCPM
    kinds = [{}, {"page": "p2_1"}, {"user_id": "u3"}, {"user_id": "u7", "consent_personalisation": False}]
    requests = [request(f"r{i}", n_ads=2, **kinds[i % len(kinds)]) for i in range(40)]

    def decisions(shuffle: int | None) -> list[tuple[str, str | None, float]]:
        eng = engine(make_world(campaign_overrides=equal_bids, shuffle=shuffle))
        return [(a.ad_id, a.creative_id, a.price) for r in requests for a in eng.decide(r).ads]

    assert decisions(None) == decisions(1)


def test_unknown_and_anonymous_users_get_contextual_or_fallback_ads() -> None:
    eng = engine()
    unknown = eng.decide(request(user_id="nobody", explain=True))
    assert unknown.ads and unknown.explanation["user"] == {"known": False, "personalised": False,
                                                           "interest_vector": False}
    assert unknown.explanation["retrieval"]["fallback"] > 0
    page = eng.decide(request(page="p3_1", explain=True))  # a product page: its vector is the context
    assert page.ads[0].campaign_id == "c3" and page.explanation["retrieval"]["probes"] == ["context"]


def test_unknown_slot_is_a_clean_no_fill() -> None:
    snap = make_world(slots=["home", "search"])
    decision = engine(snap).decide(request(slot="sidebar"))
    assert decision.ads == [] and "unknown slot 'sidebar'" in decision.no_fill_reason
    assert engine(snap).decide(request(slot="search")).ads


def test_every_ad_filtered_gives_the_reasons() -> None:
    overrides = {i: targeting(geo=["北京"]) for i in range(6)}
    eng = engine(make_world(campaign_overrides=overrides))
    decision = eng.decide(request(user_id="u1", geo="上海", explain=True))
    assert decision.ads == [] and "geo: 18" in decision.no_fill_reason
    assert decision.explanation["removed"]["geo"]["count"] == 18
    assert eng.decide(request(user_id="u1", geo="北京")).ads


def test_targeting_rules_hours_device_segment_lookalike_exclusions() -> None:
    overrides = {
        0: targeting(hours=[3]),  # 03:00 Shanghai only
        1: targeting(device=["mobile"]),
        2: targeting(segments=["1"]),  # users u1, u4, u7...
        3: targeting(lookalike_seed=["u3"], interest_threshold=0.8),
        4: targeting(negative_keywords=["二手"]),
        5: {"start": NOON + timedelta(days=1)},
    }
    snap = make_world(campaign_overrides=overrides)
    eng = engine(snap)

    def campaigns(**kw) -> set[str]:
        d = eng.decide(request(n_ads=6, **kw))
        return {a.campaign_id for a in d.ads}

    # c0: wrong hour, c3: u1 is not like u3, c5: not started yet
    assert campaigns(user_id="u1", device="mobile") == {"c1", "c2", "c4"}
    assert "c1" not in campaigns(user_id="u1", device="desktop")
    assert "c2" not in campaigns(user_id="u2")  # segment 2
    assert "c3" in campaigns(user_id="u9")  # u9 shares u3's interests (same centre)
    assert "c4" not in campaigns(user_id="u4", query="二手 手机")
    assert "c0" in campaigns(user_id="u0", ts=NOON.replace(hour=19))  # 03:00 next day in Shanghai
    assert "c5" not in campaigns(user_id="u5", ts=NOON)  # not started
    assert "c5" in campaigns(user_id="u5", ts=NOON + timedelta(days=1, hours=1))


def test_opted_out_user_gets_only_non_personalised_ads() -> None:
    snap = make_world(campaign_overrides={1: targeting(segments=["1"])}, n_users=50)
    eng = engine(snap)
    opted_out = eng.decide(request(user_id="u49", n_ads=6, explain=True))  # u49: consent false, segment 1
    assert opted_out.explanation["user"]["personalised"] is False
    assert "c1" not in {a.campaign_id for a in opted_out.ads}
    by_request = eng.decide(request(user_id="u1", consent_personalisation=False, n_ads=6, explain=True))
    assert "c1" not in {a.campaign_id for a in by_request.ads}
    assert "c1" in {a.campaign_id for a in eng.decide(request(user_id="u1", n_ads=6)).ads}


def test_already_bought_items_are_excluded() -> None:
    eng = engine()
    shown = {a.ad_id for i in range(30) for a in eng.decide(request(f"r{i}", user_id="u0", n_ads=6)).ads}
    assert "a0_0" not in shown and shown & {"a0_1", "a0_2"}  # u0 bought p0_0


def test_zero_budget_and_budget_exhausted_mid_request() -> None:
    overrides = {i: {"total_budget": 0.0} for i in range(6)}
    decision = engine(make_world(campaign_overrides=overrides)).decide(request(user_id="u1", explain=True))
    assert decision.ads == [] and "zero_budget" in decision.no_fill_reason
    # a few clicks' worth of budget: reservations use it up, then requests get a no-fill that says why
    tight = {i: {"total_budget": 0.05, "daily_budget": 0.05, "max_cpc": 0.05} for i in range(6)}
    eng = engine(make_world(campaign_overrides=tight), config=EngineConfig(pacing=False))
    decisions = [eng.decide(request(f"r{i}", user_id="u1", n_ads=6)) for i in range(10)]
    reserved = {f"c{i}": sum(a.price for d in decisions for a in d.ads if a.campaign_id == f"c{i}")
                for i in range(6)}
    assert all(v <= 0.05 + 1e-9 for v in reserved.values())
    assert decisions[-1].ads == [] and "budget_exhausted" in decisions[-1].no_fill_reason
    # budget left, but less than the price the auction set: admitted, then the reservation is refused
    short = {i: {"total_budget": 0.5, "daily_budget": 0.5} for i in range(6)}
    eng = engine(make_world(campaign_overrides=short), config=EngineConfig(pacing=False, price_rule="first"))
    refused = eng.decide(request("short", user_id="u1", n_ads=2, explain=True))
    assert refused.ads == [] and "reservation_refused" in refused.no_fill_reason


def test_frequency_cap_per_user_per_day() -> None:
    snap = make_world(campaign_overrides={i: {"freq_cap_daily": 2} for i in range(6)})
    eng = engine(snap)
    seen = [len(eng.decide(request(f"r{i}", user_id="u1", n_ads=6)).ads) for i in range(4)]
    assert sum(seen) == 12 and seen[-1] == 0  # 6 campaigns x 2 exposures, then nothing
    assert eng.decide(request("next-day", user_id="u1", n_ads=6, ts=NOON + timedelta(days=1))).ads


def test_nan_scores_are_dropped_not_bid() -> None:
    decision = engine(make_world(scorer=NaNScorer())).decide(request(user_id="u1", n_ads=6, explain=True))
    assert decision.explanation["removed"]["nan_score"]["count"] > 0
    assert all(np.isfinite(a.ecpm) for a in decision.ads)


def test_concurrent_requests_and_clicks_never_overspend() -> None:
    overrides = {i: {"total_budget": 3.0, "daily_budget": 3.0} for i in range(6)}
    eng = engine(make_world(campaign_overrides=overrides), config=EngineConfig(pacing=False))
    charged: list[float] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(40):
            d = eng.decide(request(f"t{t}-{i}", user_id=f"u{(t * 7 + i) % 49}", n_ads=3))
            for ad in d.ads:
                out = eng.record(AdEvent(ad.token, "click", ts=NOON.timestamp() + 1))
                with lock:
                    charged.append(out.charged)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [f"c{i}" for i in range(6)]
    total, _, reserved = eng.counters.budget_state(ids, ["2026-03-02"] * 6, now=NOON.timestamp() + 2)
    assert (total <= 3.0 + 1e-9).all() and sum(charged) == pytest.approx(total.sum())
    assert total.sum() > 0.9 * 18  # and the budgets were actually spent


def test_clicks_teach_the_creative_bandit() -> None:
    eng = engine()
    for i in range(300):
        d = eng.decide(request(f"r{i}", user_id="u1"))
        ad = d.ads[0]
        now = NOON.timestamp() + 1
        eng.record(AdEvent(ad.token, "impression", ts=now))
        if ad.creative_id.endswith("_1") and i % 3 == 0:  # creative 1 gets a third of its views clicked
            eng.record(AdEvent(ad.token, "click", ts=now))
    late = [eng.decide(request(f"late{i}", user_id="u1")).ads[0].creative_id for i in range(100)]
    assert sum(c.endswith("_1") for c in late) > 80


def test_refresh_swaps_the_snapshot() -> None:
    eng = engine()
    assert eng.decide(request(user_id="u1")).ads[0].campaign_id == "c1"
    eng.refresh(make_world(campaign_overrides={1: {"status": "paused"}}))
    assert "c1" not in {a.campaign_id for a in eng.decide(request("r2", user_id="u1", n_ads=6)).ads}


def test_engine_paces_a_days_budget_through_the_decision_path() -> None:
    day_start = NOON.replace(hour=16)  # 00:00 in Asia/Shanghai
    snap = make_world(n_campaigns=1, ads_per_campaign=2,
                      campaign_overrides={0: {"daily_budget": 4.0, "total_budget": 100.0}})
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 86400, 1500))

    def run(pacing: bool) -> tuple[float, float]:
        eng = engine(snap, config=EngineConfig(pacing=pacing))
        spent_by_noon = 0.0
        for i, t in enumerate(times):
            ts = day_start + timedelta(seconds=float(t))
            for ad in eng.decide(request(f"p{i}", user_id="u0", ts=ts)).ads:  # every ad clicked: 0.01 each
                eng.record(AdEvent(ad.token, "click", ts=ts.timestamp() + 1))
            if t < 43200:
                spent_by_noon = eng.counters.budget_state(["c0"], ["2026-03-03"], ts.timestamp() + 2)[1][0]
        total = eng.counters.budget_state(["c0"], ["2026-03-03"], day_start.timestamp() + 86400)[1][0]
        return spent_by_noon, total

    unpaced_noon, unpaced_total = run(pacing=False)
    assert unpaced_noon == pytest.approx(4.0)  # natural traffic would spend 15: gone by noon
    paced_noon, paced_total = run(pacing=True)
    assert 1.5 <= paced_noon <= 2.5 and paced_total >= 3.6 and paced_total <= 4.0 + 1e-9
