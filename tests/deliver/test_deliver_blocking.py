"""Request block lists (OpenRTB ``badv`` / ``bcat``) are eligibility filters: a blocked ad never wins, the next
eligible one takes its place, and blocking everything is a clean no-fill that names the filter."""

from __future__ import annotations

import pandas as pd
import pytest
from deliver_world import NOON, make_world

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.schema import AdRequest

SETTINGS = Settings(mode="test", token_secret="deliver-test-secret-0123")


@pytest.fixture
def engine() -> DecisionEngine:
    """Campaign i belongs to advertiser ``adv{i}`` (domain ``Shop{i}.example``); its products sit in the category
    path ``["服饰", "cat{i}"]``."""
    overrides = {i: {"advertiser_id": f"adv{i}"} for i in range(6)}
    advertisers = pd.DataFrame({"advertiser_id": [f"adv{i}" for i in range(6)],
                                "domain": [f"Shop{i}.example" for i in range(6)]})
    products = pd.DataFrame({"product_id": [f"p{i}_{j}" for i in range(6) for j in range(3)],
                             "category": [["服饰", f"cat{i}"] for i in range(6) for _ in range(3)]})
    snapshot = make_world(campaign_overrides=overrides, advertisers=advertisers, products=products)
    return DecisionEngine(snapshot, settings=SETTINGS)


def request(rid: str, **kwargs) -> AdRequest:
    return AdRequest(request_id=rid, slot="home", ts=NOON, user_id="u1", n_ads=2, **kwargs)


@pytest.mark.parametrize(("blocks", "reason"), [({"block_domains": ["SHOP1.EXAMPLE"]}, "blocked_domain"),
                                                ({"block_categories": ["cat1"]}, "blocked_category")])
def test_a_blocked_winner_is_replaced_by_the_next_eligible_ad(engine: DecisionEngine, blocks: dict,
                                                              reason: str) -> None:
    free = engine.decide(request("free"))
    assert [a.campaign_id for a in free.ads][:1] == ["c1"]  # u1's interests are near campaign 1's products
    blocked = engine.decide(request(f"blocked-{reason}", explain=True, **blocks))
    assert [a.campaign_id for a in blocked.ads][:1] == [free.ads[1].campaign_id]  # the runner-up moves up
    assert "c1" not in {a.campaign_id for a in blocked.ads}
    removed = blocked.explanation["removed"][reason]
    assert removed["count"] == 3 and set(removed["ads"]) == {"a1_0", "a1_1", "a1_2"}


def test_blocking_every_ad_is_a_clean_no_fill_holding_no_budget(engine: DecisionEngine) -> None:
    decision = engine.decide(request("all", block_categories=["服饰"], block_domains=["nobody.example"]))
    assert decision.ads == [] and "blocked_category: 18" in decision.no_fill_reason
    ids = engine.snapshot.campaigns.ids.tolist()
    _, _, reserved = engine.counters.budget_state(ids, ["2026-03-02"] * len(ids), NOON.timestamp())
    assert reserved.sum() == 0
    assert engine.decide(request("unknown-lists", block_categories=["IAB1"], block_domains=["x.example"])).ads
