"""Feedback events: signatures, expiry, de-duplication, spend on clicks, and the Arrow batch for the store."""

from __future__ import annotations

import pytest
from deliver_world import NOON, make_world

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.feedback import AdEvent
from adpilot.deliver.tokens import TokenClaims, TokenError, TokenSigner
from adpilot.schema import EVENT_ARROW_SCHEMA, AdRequest

SETTINGS = Settings(mode="test", token_secret="deliver-test-secret-0123")
T0 = NOON.timestamp()


@pytest.fixture(scope="module")
def world():
    return make_world()


def served(eng: DecisionEngine, rid: str = "r1"):
    return eng.decide(AdRequest(request_id=rid, user_id="u1", slot="home", ts=NOON)).ads[0]


def test_tokens_reject_forgery_tampering_and_expiry() -> None:
    signer = TokenSigner("s" * 20)
    claims = TokenClaims("r", "u", "a", "c", "cr", "home", 0.5, 0.0, 100.0)
    token = signer.sign(claims)
    assert signer.verify(token, now=100.0) == claims
    with pytest.raises(TokenError, match="signature"):
        TokenSigner("t" * 20).verify(token, now=0.0)  # signed with another secret
    body, mac = token.split(".")
    tampered = signer.sign(TokenClaims("r", "u", "a", "c", "cr", "home", 0.01, 0.0, 100.0)).split(".")[0]
    with pytest.raises(TokenError, match="signature"):
        signer.verify(f"{tampered}.{mac}", now=0.0)  # cheaper price, old signature
    with pytest.raises(TokenError, match="expired"):
        signer.verify(token, now=101.0)
    assert signer.verify(token, now=150.0, grace_s=60.0).ad_id == "a"
    for garbage in ("", "abc", "a.b.c", "!!!.###"):
        with pytest.raises(TokenError):
            signer.verify(garbage, now=0.0)


def test_click_commits_the_reserved_price_once(world) -> None:
    eng = DecisionEngine(world, settings=SETTINGS)
    ad = served(eng)
    day = "2026-03-02"
    assert eng.counters.budget_state([ad.campaign_id], [day], now=T0)[2][0] == pytest.approx(ad.price)
    click = eng.record(AdEvent(ad.token, "click", ts=T0 + 5))
    assert click.accepted and click.charged == pytest.approx(ad.price)
    again = eng.record(AdEvent(ad.token, "click", ts=T0 + 6))
    assert not again.accepted and "duplicate" in again.reason
    total, spent_day, reserved = eng.counters.budget_state([ad.campaign_id], [day], now=T0 + 7)
    assert (total[0], spent_day[0], reserved[0]) == pytest.approx((ad.price, ad.price, 0.0))


def test_unclicked_reservation_expires_and_stops_counting(world) -> None:
    eng = DecisionEngine(world, settings=SETTINGS)
    ad = served(eng)
    later = T0 + eng.config.token_ttl_s + 1
    assert eng.counters.budget_state([ad.campaign_id], ["2026-03-02"], now=later)[2][0] == 0.0
    late_click = eng.record(AdEvent(ad.token, "click", ts=later))
    assert not late_click.accepted and "expired" in late_click.reason


def test_forged_and_unknown_events_are_rejected_and_batch_matches_store_schema(world) -> None:
    eng = DecisionEngine(world, settings=SETTINGS)
    ad = served(eng)
    forged = DecisionEngine(world, settings=Settings(mode="test", token_secret="another-secret-456789"))
    fake = served(forged, "r-fake")
    events = [AdEvent(ad.token, "impression", ts=T0 + 1), AdEvent(ad.token, "click", ts=T0 + 2),
              AdEvent(ad.token, "conversion", ts=T0 + 2 * 86400, value=99.0),  # inside the attribution window
              AdEvent(ad.token, "impression", ts=T0 + 3), AdEvent(fake.token, "click", ts=T0 + 2),
              AdEvent(ad.token, "view", ts=T0 + 2)]  # type: ignore[arg-type]
    table, rejected = eng.feedback.record_many(events)
    assert table.schema.equals(EVENT_ARROW_SCHEMA)
    assert table.column("type").to_pylist() == ["ad_impression", "ad_click", "conversion"]
    assert table.column("price").to_pylist()[1] == pytest.approx(ad.price)
    assert table.column("value").to_pylist()[2] == 99.0
    assert table.column("user_id").to_pylist() == ["u1"] * 3
    assert [i for i, _ in rejected] == [3, 4, 5]
    assert "duplicate" in rejected[0][1] and "signature" in rejected[1][1] and "unknown event" in rejected[2][1]
    impressions, clicks = eng.counters.bandit_counts([ad.creative_id])
    assert (impressions[0], clicks[0]) == (1, 1)


def test_feedback_batch_goes_into_the_store_through_ingest(world) -> None:
    from adpilot.store.db import Store
    from adpilot.store.ingest import ingest_table

    eng = DecisionEngine(world, settings=SETTINGS)
    ad = served(eng)
    table, _ = eng.feedback.record_many([AdEvent(ad.token, "impression", ts=T0 + 1),
                                         AdEvent(ad.token, "click", ts=T0 + 2)])
    with Store(":memory:") as store:
        report = ingest_table(store, table, kind="events", source="serving-feedback", settings=SETTINGS,
                              already_pseudonymous=True)
        rows = store.con.execute("SELECT type, ad_id, price, user_id FROM events ORDER BY ts").fetchall()
    assert report is not None
    assert rows == [("ad_impression", ad.ad_id, None, "u1"), ("ad_click", ad.ad_id, pytest.approx(ad.price), "u1")]
