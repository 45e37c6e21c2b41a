"""The edge under bad input and attack, OpenRTB 2.6 signals (blocks, tmax, privacy, win notices), and exact
reconciliation of events and spend between the responses, the metrics, the counters and the store."""

from __future__ import annotations

import gc
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from adpilot.config import Settings
from adpilot.deliver.tokens import TokenClaims, TokenSigner
from adpilot.serve.app import create_app
from adpilot.serve.main import vet_copy
from adpilot.serve.openrtb import BidRequest, to_ad_request
from adpilot.serve.store_access import StoreAccess
from adpilot.serve.wiring import engine_factory


@pytest.fixture(scope="module")
def edge(live_store: tuple[Path, Settings], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app on a copy of the live store whose campaigns all reach everyone (open targeting, no caps)."""
    _, settings = live_store
    store = tmp_path_factory.mktemp("edge") / "open.duckdb"
    shutil.copy(settings.resolved_store_path, store)
    with duckdb.connect(str(store)) as con:
        con.execute("UPDATE campaigns SET targeting = '{}', freq_cap_daily = NULL, freq_cap_lifetime = NULL")
    open_settings = settings.model_copy(update={"store_path": store})
    with TestClient(create_app(open_settings, engine_factory(open_settings), vet_copy)) as client:
        yield client


@pytest.fixture(scope="module")
def users(live_store: tuple[Path, Settings]) -> list[tuple[str, str]]:
    """(raw user id, geo) of the world's users: with their geo and a phone, most campaigns may reach them."""
    home, _ = live_store
    table = pq.read_table(home / "world" / "users.parquet", columns=["user_id", "geo"])
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def _placed(client: TestClient, users: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    """The first ad placed for a run of known users."""
    for i, (user, geo) in enumerate(users[:60]):
        body = {"request_id": f"{tag}-{i}", "user_id": user, "geo": geo, "device": "mobile", "slot": "feed"}
        ads = client.post("/v1/decide", json=body).json()["ads"]
        if ads:
            return dict(ads[0])
    raise AssertionError("sixty known users got no ad at all")


def _bid(client: TestClient, users: list[tuple[str, str]], tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bid request, first bid) for the first of a run of known users who gets a bid."""
    for i, (user, geo) in enumerate(users[:60]):
        request = {"id": f"{tag}-{i}", "tmax": 500, "imp": [{"id": "1", "tagid": "feed", "banner": {"w": 300}}],
                   "user": {"id": user}, "device": {"devicetype": 4, "geo": {"region": geo}}}
        done = client.post("/openrtb/2.6/bid", json=request)
        if done.status_code == 200:
            return request, done.json()["seatbid"][0]["bid"][0]
        assert done.status_code == 204, done.text
    raise AssertionError("sixty known users got no bid at all")


def _reserved(client: TestClient) -> float:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    ids = engine.snapshot.campaigns.ids.tolist()
    _, _, reserved = engine.counters.budget_state(ids, ["2000-01-01"] * len(ids), 0.0)
    return float(sum(reserved))


def _metric(client: TestClient, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", client.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_malformed_huge_and_mistyped_bodies_are_named_4xx(edge: TestClient) -> None:
    broken = edge.post("/v1/decide", content=b'{"request_id": "x",', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["field"] == "body"
    assert "malformed JSON" in broken.text
    chunked = edge.post("/v1/decide", content=(b"x" * 65_536 for _ in range(40)),
                        headers={"content-type": "application/json"})  # no Content-Length: streamed and counted
    assert chunked.status_code == 413 and "larger than" in chunked.text
    typed = edge.post("/openrtb/2.6/bid", json={"id": "t", "imp": [{"id": "1", "bidfloor": "cheap"}]})
    assert typed.status_code == 422 and "imp.0.bidfloor" in typed.text
    negative = edge.get("/v1/win", params={"t": "x" * 20, "price": -1})
    assert negative.status_code == 422 and "price" in negative.text
    macro = edge.get("/v1/win", params={"t": "x" * 20, "price": "${AUCTION_PRICE}"})
    assert macro.status_code == 422 and "price" in macro.text
    value = edge.post("/v1/events", json={"token": "x" * 20, "type": "conversion", "value": -5})
    assert value.status_code == 422 and "value" in value.text


def test_replayed_forged_and_foreign_tokens_are_never_counted(edge: TestClient,
                                                              users: list[tuple[str, str]]) -> None:
    ad = _placed(edge, users, "replay")
    before = _metric(edge, 'adpilot_events_total{type="impression",outcome="accepted"}')
    twice = edge.post("/v1/events", json={"events": [{"token": ad["token"], "type": "impression"}] * 2})
    assert twice.json()["accepted"] == 1 and "duplicate" in twice.json()["rejected"][0]["reason"]
    replay = edge.get("/v1/win", params={"t": ad["token"], "price": 1.5})
    assert replay.status_code == 200 and replay.json()["recorded"] is False
    payload, _ = ad["token"].split(".")
    claims = TokenClaims("forge", None, ad["ad_id"], ad["campaign_id"], None, "feed", 99.0, 0.0, 4e9)
    foreign = TokenSigner("not-the-server-secret").sign(claims)
    for token in (foreign, payload + ".AAAAAAAAAAAAAAAAAAAAAA", "no-dot-at-all-token"):
        refused = edge.post("/v1/events", json={"token": token, "type": "click"})
        assert refused.status_code == 400 and refused.json()["detail"]["rejected"][0]["reason"]
        assert edge.get("/v1/win", params={"t": token}).status_code == 400
    assert _metric(edge, 'adpilot_events_total{type="impression",outcome="accepted"}') == before + 1
    assert _metric(edge, 'adpilot_events_total{type="click",outcome="accepted"}') == 0


def test_keys_reach_only_their_own_objects(edge: TestClient) -> None:
    admin = {"X-API-Key": edge.app.state.settings.admin_api_key}  # type: ignore[attr-defined]
    alice, bob = ({"X-API-Key": edge.post("/v1/advertisers", json={"name": n}, headers=admin).json()["api_key"]}
                  for n in ("alice-edge", "bob-edge"))
    cid = edge.post("/v1/campaigns", json={"name": "a", "total_budget": 9, "daily_budget": 3},
                    headers=alice).json()["campaign_id"]
    ad_id = edge.post("/v1/ads", json={"campaign_id": cid, "product_id": "p001"}, headers=alice).json()["ad_id"]
    crid = edge.post("/v1/creatives", json={"ad_id": ad_id, "text": "轻盈透气的跑步鞋"}, headers=alice).json()["creative_id"]
    for method, path, body in (("GET", f"/v1/ads/{ad_id}", None), ("PATCH", f"/v1/ads/{ad_id}", {"status": "paused"}),
                               ("GET", f"/v1/creatives/{crid}", None),
                               ("PATCH", f"/v1/creatives/{crid}", {"text": "新文案"}),
                               ("GET", f"/v1/campaigns/{cid}/report", None),
                               ("POST", "/v1/ads", {"campaign_id": cid, "product_id": "p002"}),
                               ("POST", "/v1/creatives", {"ad_id": ad_id, "text": "别人的广告"})):
        done = edge.request(method, path, json=body, headers=bob)
        assert done.status_code == 404 and "not found for this advertiser" in done.text, (method, path, done.text)
    assert edge.get(f"/v1/ads/{ad_id}", headers=alice).json()["status"] == "active"
    assert edge.get(f"/v1/creatives/{crid}", headers=alice).json()["text"] == "轻盈透气的跑步鞋"
    assert edge.get("/v1/ads", headers=bob).json() == []
    wrong = edge.get("/v1/ads", headers={"Authorization": "Bearer ak_forged"})
    assert wrong.status_code == 401 and "invalid API key" in wrong.text


def test_management_never_stores_a_row_the_snapshot_would_refuse(edge: TestClient) -> None:
    admin = {"X-API-Key": edge.app.state.settings.admin_api_key}  # type: ignore[attr-defined]
    key = {"X-API-Key": edge.post("/v1/advertisers", json={"name": "dora"}, headers=admin).json()["api_key"]}
    zone = edge.post("/v1/campaigns", json={"name": "z", "total_budget": 9, "daily_budget": 3,
                                            "timezone": "Mars/Olympus"}, headers=key)
    assert zone.status_code == 422 and "timezone" in zone.text
    mixed = edge.post("/v1/campaigns", json={"name": "m", "total_budget": 9, "daily_budget": 3,
                                             "start": "2030-01-02T00:00:00", "end": "2030-01-01T00:00:00+08:00"},
                      headers=key)
    assert mixed.status_code == 422 and "end" in mixed.text
    cid = edge.post("/v1/campaigns", json={"name": "ok", "total_budget": 9, "daily_budget": 3},
                    headers=key).json()["campaign_id"]
    over = edge.patch(f"/v1/campaigns/{cid}", json={"daily_budget": 50}, headers=key)
    assert over.status_code == 422 and "daily_budget" in over.text
    cleared = edge.patch(f"/v1/campaigns/{cid}", json={"name": None}, headers=key)
    assert cleared.status_code == 422 and "`name` cannot be null" in cleared.text
    gc.unfreeze()
    refreshed = edge.post("/v1/admin/refresh", headers=admin)
    assert refreshed.status_code == 200, refreshed.text
    assert gc.get_freeze_count() > 0  # the fresh snapshot is out of the full collections' way


def test_openrtb_win_notice_counts_the_impression_once(edge: TestClient, users: list[tuple[str, str]]) -> None:
    _, bid = _bid(edge, users, "win")
    url = bid["nurl"].replace("${AUCTION_PRICE}", "2.35")
    first, again = edge.get(url), edge.get(url)
    assert first.status_code == 200 and first.json() == {"recorded": True, "reason": None}
    assert again.status_code == 200 and again.json()["recorded"] is False
    token = re.search(r"t=([^&]+)", url).group(1)  # type: ignore[union-attr]
    pixel = edge.post("/v1/events", json={"token": token, "type": "impression"})
    assert pixel.status_code == 400 and "duplicate" in pixel.text


def test_openrtb_blocks_are_filters_so_the_next_ad_bids(edge: TestClient, users: list[tuple[str, str]]) -> None:
    request, bid = _bid(edge, users, "blk")
    ads = edge.app.state.engine.snapshot.ads  # type: ignore[attr-defined]

    def categories(ad_id: str) -> set[str]:
        return {c for c, rows in ads.category_members.items() if ads.index[ad_id] in rows}

    domain, blocked_categories = bid["adomain"][0], categories(bid["adid"])
    assert blocked_categories
    for i, blocks in enumerate(({"badv": [domain.upper()]}, {"bcat": sorted(blocked_categories)})):
        again = edge.post("/openrtb/2.6/bid", json={**request, "id": f"{request['id']}-b{i}", **blocks})
        assert again.status_code == 200, "the next eligible ad bids in the blocked one's place"
        placed = again.json()["seatbid"][0]["bid"][0]
        assert placed["adid"] != bid["adid"]
        assert domain not in placed["adomain"] if i == 0 else blocked_categories.isdisjoint(categories(placed["adid"]))
    user, geo = users[0]
    every = {"request_id": "blk-all", "user_id": user, "geo": geo, "device": "mobile", "slot": "feed",
             "block_categories": sorted(ads.category_members), "explain": True}
    nothing = edge.post("/v1/decide", json=every).json()
    assert nothing["ads"] == [] and "blocked_category" in nothing["no_fill_reason"]
    assert nothing["explanation"]["removed"]["blocked_category"]["count"] > 0


def test_openrtb_late_answers_become_no_bids_without_holding_budget(edge: TestClient, users: list[tuple[str, str]]) -> None:
    reserved = _reserved(edge)
    for i, (user, geo) in enumerate(users[:20]):
        late = edge.post("/openrtb/2.6/bid", json={"id": f"late-{i}", "tmax": 1, "user": {"id": user},
                                                  "device": {"devicetype": 4, "geo": {"region": geo}},
                                                  "imp": [{"id": str(k), "tagid": "feed"} for k in range(3)]})
        assert late.status_code == 204
    assert _reserved(edge) == pytest.approx(reserved)
    assert _metric(edge, 'adpilot_no_fill_total{reason="tmax"}') == 20
    foreign = edge.post("/openrtb/2.6/bid", json={"id": "usd", "cur": ["USD"], "imp": [{"id": "1"}]})
    assert foreign.status_code == 204


@pytest.mark.parametrize(("regs", "user", "personalised"), [
    (None, {"id": "u1"}, True),
    ({"coppa": 1}, {"id": "u1", "consent": "CP..."}, False),
    ({"gdpr": 1}, {"id": "u1"}, False),
    ({"gdpr": 1}, {"id": "u1", "consent": "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"}, True),
    ({"ext": {"gdpr": 1}}, {"id": "u1"}, False),
    ({"gpp": "DBABMA~CPXxRfAPXxRfA", "gpp_sid": [2]}, {"id": "u1"}, False),
])
def test_privacy_signals_make_requests_non_personalised(regs: dict[str, Any] | None, user: dict[str, Any],
                                                        personalised: bool) -> None:
    request = BidRequest.model_validate({"id": "r", "imp": [{"id": "1"}], "user": user, "regs": regs})
    ad_request = to_ad_request(request, request.imp[0])
    assert ad_request.consent_personalisation is personalised
    assert (ad_request.user_id is not None) is personalised


def _stored(store: Path) -> tuple[int, float]:
    # in this process's turn, as the server's own connections: a bare connect raced the spool's writer
    # ("Can't open a connection to same database file with a different configuration")
    with StoreAccess(store).connect(read_only=True) as con:
        n, spend = con.execute("SELECT count(*), coalesce(sum(price), 0) FROM events WHERE source_file = 'serve'"
                               ).fetchone()  # type: ignore[misc]
    return int(n), float(spend)


def test_events_spend_and_store_reconcile_exactly(edge: TestClient, users: list[tuple[str, str]],
                                                  ) -> None:
    engine, spool = edge.app.state.engine, edge.app.state.spool  # type: ignore[attr-defined]
    store = edge.app.state.settings.resolved_store_path  # type: ignore[attr-defined]
    spool.flush()
    rows_before, spend_before = _stored(store)
    metric = 'adpilot_events_total{type="click",outcome="accepted"}'
    clicks_before = _metric(edge, metric)
    ads = [_placed(edge, users[k:], f"rec{k}") for k in range(0, 30, 5)]
    campaigns = sorted({a["campaign_id"] for a in ads})
    spent_before, _, _ = engine.counters.budget_state(campaigns, ["2000-01-01"] * len(campaigns), 0.0)
    events = [{"token": a["token"], "type": t} for a in ads for t in ("impression", "click")]
    events.append({"token": ads[0]["token"], "type": "click"})  # a replayed click
    posted = edge.post("/v1/events", json={"events": events}).json()
    assert posted["accepted"] == 2 * len(ads) and len(posted["rejected"]) == 1
    spool.flush()
    rows_after, spend_after = _stored(store)
    spent_after, _, _ = engine.counters.budget_state(campaigns, ["2000-01-01"] * len(campaigns), 0.0)
    charged = sum(a["price"] for a in ads)  # CPC billing: each click commits the price reserved for its ad
    assert rows_after - rows_before == posted["accepted"]
    assert _metric(edge, metric) - clicks_before == len(ads)
    assert spend_after - spend_before == pytest.approx(charged)
    assert float(sum(spent_after) - sum(spent_before)) == pytest.approx(charged)
