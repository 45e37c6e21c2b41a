"""The HTTP API on a real store: decisions, OpenRTB, events, management isolation, metrics and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from adpilot.config import Settings


def _user(live_store: tuple[Path, Settings], index: int = 0) -> str:
    home, _ = live_store
    return str(pq.read_table(home / "world" / "users.parquet", columns=["user_id"]).column(0)[index])


def _advertiser(client: TestClient, name: str) -> dict[str, str]:
    admin = {"X-API-Key": client.app.state.settings.admin_api_key}  # type: ignore[attr-defined]
    done = client.post("/v1/advertisers", json={"name": name, "domain": f"{name}.example"}, headers=admin)
    assert done.status_code == 201, done.text
    return {"X-API-Key": done.json()["api_key"]}


def _decide(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"request_id": "t-1", "slot": "feed", "query": "运动鞋", **fields}
    done = client.post("/v1/decide", json=body)
    assert done.status_code == 200, done.text
    return done.json()


def test_health_reports_a_live_snapshot(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["ads"] > 0 and health["users"] > 0


def test_decide_places_ads_with_tokens_for_a_known_user(client: TestClient, live_store) -> None:
    placed = []
    for i in range(8):
        decision = _decide(client, request_id=f"k-{i}", user_id=_user(live_store, i), explain=True)
        placed += decision["ads"]
        assert decision["ads"] or decision["no_fill_reason"]
    assert placed, "eight requests from known users should place at least one ad"
    ad = placed[0]
    assert 0 <= ad["pctr"] <= 1 and ad["price"] >= 0 and len(ad["token"]) > 20


def test_decide_rejects_bad_fields_by_name(client: TestClient) -> None:
    done = client.post("/v1/decide", json={"request_id": "x", "slot": "feed", "floor_price": -3})
    assert done.status_code == 422 and "floor_price" in done.text
    done = client.post("/v1/decide", content=b"{not json", headers={"content-type": "application/json"})
    assert done.status_code == 422
    done = client.post("/v1/decide", json={"request_id": "x", "slot": "feed", "n_ads": "many"})
    assert done.status_code == 422 and "n_ads" in done.text
    done = client.post("/v1/decide", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert done.status_code == 413


def test_events_are_counted_once_and_forged_tokens_refused(client: TestClient, live_store) -> None:
    token = None
    for i in range(20):
        ads = _decide(client, request_id=f"e-{i}", user_id=_user(live_store, i + 10))["ads"]
        if ads:
            token = ads[0]["token"]
            break
    assert token is not None
    first = client.post("/v1/events", json={"token": token, "type": "impression"})
    assert first.status_code == 200 and first.json()["accepted"] == 1
    again = client.post("/v1/events", json={"token": token, "type": "impression"})
    assert again.status_code == 400 and "duplicate" in again.text
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    bad = client.post("/v1/events", json={"events": [{"token": forged, "type": "click"}]})
    assert bad.status_code == 400
    metrics = client.get("/metrics").text
    assert 'adpilot_events_total{type="impression",outcome="accepted"} 1.0' in metrics


def test_openrtb_bid_or_no_bid(client: TestClient, live_store) -> None:
    request = {"id": "br-1", "tmax": 200, "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "tagid": "feed"}],
               "site": {"page": "home", "keywords": "连衣裙"}, "user": {"id": _user(live_store, 3)},
               "device": {"devicetype": 4}}
    done = client.post("/openrtb/2.6/bid", json=request)
    assert done.status_code in (200, 204)
    if done.status_code == 200:
        bid = done.json()["seatbid"][0]["bid"][0]
        assert bid["impid"] == "1" and bid["price"] >= 0 and "nurl" in bid
    wrong = client.post("/openrtb/2.6/bid", json={"id": "br-2", "imp": []})
    assert wrong.status_code == 422 and "imp" in wrong.text


def test_management_is_isolated_per_advertiser(client: TestClient) -> None:
    alice, bob = _advertiser(client, "alice"), _advertiser(client, "bob")
    campaign = {"name": "spring", "total_budget": 100, "daily_budget": 10}
    made = client.post("/v1/campaigns", json=campaign, headers=alice)
    assert made.status_code == 201, made.text
    cid = made.json()["campaign_id"]
    assert client.get(f"/v1/campaigns/{cid}", headers=alice).status_code == 200
    assert client.get(f"/v1/campaigns/{cid}", headers=bob).status_code == 404
    assert client.patch(f"/v1/campaigns/{cid}", json={"daily_budget": 5}, headers=bob).status_code == 404
    assert client.post(f"/v1/campaigns/{cid}/pause", headers=bob).status_code == 404
    assert client.get("/v1/campaigns", headers=bob).json() == []
    assert client.get(f"/v1/campaigns/{cid}").status_code == 401
    assert client.get(f"/v1/campaigns/{cid}", headers={"X-API-Key": "ak_wrong"}).status_code == 401
    assert client.post("/v1/advertisers", json={"name": "eve"}, headers=alice).status_code == 403
    paused = client.post(f"/v1/campaigns/{cid}/pause", headers=alice)
    assert paused.json()["status"] == "paused"


def test_management_rejects_bad_budgets_and_illegal_copy(client: TestClient) -> None:
    carol = _advertiser(client, "carol")
    bad = client.post("/v1/campaigns", json={"name": "x", "total_budget": 10, "daily_budget": 20}, headers=carol)
    assert bad.status_code == 422 and "daily_budget" in bad.text
    negative = client.post("/v1/campaigns", json={"name": "x", "total_budget": -3, "daily_budget": 1}, headers=carol)
    assert negative.status_code == 422 and "total_budget" in negative.text
    cid = client.post("/v1/campaigns", json={"name": "ok", "total_budget": 10, "daily_budget": 5},
                      headers=carol).json()["campaign_id"]
    ad = client.post("/v1/ads", json={"campaign_id": cid, "product_id": "p001"}, headers=carol)
    assert ad.status_code == 201, ad.text
    illegal = client.post("/v1/creatives", json={"ad_id": ad.json()["ad_id"], "text": "全网最低价，销量冠军的运动鞋"},
                          headers=carol)
    assert illegal.status_code == 422 and "absolute" in illegal.text
    legal = client.post("/v1/creatives", json={"ad_id": ad.json()["ad_id"], "text": "轻盈透气的跑步鞋，周末出发更自在"},
                        headers=carol)
    assert legal.status_code == 201, legal.text
