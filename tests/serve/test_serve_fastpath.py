"""The ad routes' fast lane and the engine line: same answers as FastAPI's route, errors worded by FastAPI, and
shedding once the line to the engine is too long."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from fastapi.testclient import TestClient

from adpilot.serve.fastpath import _declared_json
from adpilot.serve.guard import EngineQueue


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


def test_engine_line_is_too_long_once_its_oldest_waited_past_the_limit() -> None:
    queue = EngineQueue(threads=1, max_wait_s=0.05)
    busy, release = threading.Event(), threading.Event()

    def hold() -> str:
        busy.set()
        release.wait(5)
        return "held"

    async def main() -> None:
        results: list[str] = []

        async def run(arrived: float, func) -> None:  # noqa: ANN001
            results.append(await queue.run(arrived, func))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, time.perf_counter(), hold)
            while not busy.is_set():
                await anyio.sleep(0.001)
            assert not queue.too_long(time.perf_counter())  # one running, nobody waiting
            tasks.start_soon(run, time.perf_counter(), lambda: "fresh")
            await anyio.sleep(0.01)
            assert not queue.too_long(time.perf_counter())
            await anyio.sleep(0.06)
            assert queue.too_long(time.perf_counter())  # the waiting one has now waited past 50 ms
            release.set()
        assert results == ["held", "fresh"] and not queue.too_long(time.perf_counter())

    anyio.run(main)
