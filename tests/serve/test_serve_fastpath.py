"""The ad routes' fast lane and the door: same answers as FastAPI's route, errors worded by FastAPI, and shedding
of the ad requests whose turn on the event loop comes too late."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from adpilot.serve.fastpath import _declared_json
from adpilot.serve.guard import Guard, Inflight, Message, Receive, Scope, Send
from adpilot.serve.metrics import Metrics


@pytest.mark.parametrize(("content_type", "fast"), [
    (None, False), (b"application/json", True), (b"application/json; charset=utf-8", True),
    (b"Application/JSON", True), (b"application/vnd.openrtb+json", True), (b"text/plain", False),
    (b"application/x-www-form-urlencoded", False),
])
def test_json_bodies_are_recognised_as_fastapi_does(content_type: bytes | None, fast: bool) -> None:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    assert _declared_json(headers) is fast


def test_both_lanes_answer_alike(client: TestClient) -> None:
    """A JSON body takes the fast lane, a body not declared as JSON FastAPI's route; invalid bodies are answered
    by FastAPI on either (the contract's 422 wording)."""
    body = b'{"request_id": "lane-1", "slot": "feed", "query": "\xe8\xbf\x90\xe5\x8a\xa8"}'
    fast = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert fast.status_code == 200 and fast.json()["request_id"] == "lane-1"
    slow = client.post("/v1/decide", content=body.replace(b"lane-1", b"lane-2"), headers={"content-type": "text/plain"})
    assert slow.status_code == 422  # FastAPI does not read a text/plain body as JSON
    bad = client.post("/v1/decide", json={"request_id": "x", "slot": "feed", "n_ads": 0})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "n_ads"
    broken = client.post("/v1/decide", content=b'{"request_id": ', headers={"content-type": "application/json"})
    assert broken.status_code == 422 and broken.json()["detail"][0]["problem"].startswith("malformed JSON at character")
    openrtb = client.post("/openrtb/2.6/bid", json={"id": "lane-3", "imp": [{"id": "1", "tagid": "feed"}],
                                                    "site": {"keywords": "运动"}})
    assert openrtb.status_code in (200, 204)
    extra = client.post("/v1/decide", json={"request_id": "lane-4", "slot": "feed", "unknown": 1})
    assert extra.status_code == 422 and extra.json()["detail"][0]["field"] == "unknown"
    bare = client.post("/v1/decide", content=body.replace(b"lane-1", b"lane-5"))  # no Content-Type: not JSON
    assert bare.status_code == 422


def test_ad_requests_whose_turn_comes_too_late_are_shed_fast() -> None:
    """Decisions run on the event loop, one after the other: of a burst read together, each ad request takes its
    arrival time before any is decided, and those whose turn comes after ``max_wait_s`` get the fast no-bid."""
    decided: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        time.sleep(0.06)  # a decision, holding the loop
        decided.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    metrics = Metrics()
    guard = Guard(app, metrics, Inflight(32), max_body_bytes=1000, max_wait_s=0.1)

    async def call(path: str) -> tuple[int, bool]:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": path, "headers": [], "state": {}}
        await guard(scope, receive, send)
        return sent[0]["status"], (b"x-adpilot-shed", b"1") in sent[0]["headers"]

    async def burst() -> list[tuple[int, bool]]:
        return list(await asyncio.gather(*(call(p) for p in ["/v1/decide"] * 2 + ["/openrtb/2.6/bid"] * 2)))

    answers = asyncio.run(burst())
    assert answers[:2] == [(200, False), (200, False)]  # waited 0 and 60 ms
    assert answers[2:4] == [(204, True), (204, True)]  # their turn came at 120 ms: OpenRTB's no-bid, at once
    assert decided == ["/v1/decide", "/v1/decide"]
    assert metrics.shed.lines() == ['adpilot_shed_total{route="/openrtb/2.6/bid"} 2.0']
