"""The server's front door, as plain ASGI middleware: body-size limit, load shedding and request metrics.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` copies every request and
response through an extra task and stream, which costs more than a whole decision under load. The body limit holds
for chunked uploads too (no ``Content-Length``): the bytes are counted as they arrive and the request is refused
with 413 once past the limit, before the body is buffered.

Shedding has two triggers. ``Inflight`` caps the requests in progress. An ad request is also refused when its turn
comes too late: decisions run on the event loop itself, one after the other (see :mod:`adpilot.serve.app`), so a
request waits for the decisions of those read before it. Each ad request first lets the requests read with it check
in (one yield to the loop: every request of a burst takes its arrival time before any of them is decided), and is
answered with a fast no-bid when, at its turn, it has waited ``max_wait_s``. A request read while the loop was busy
has waited unseen for at most one such turn of the loop, so an answered ad request has waited at most about twice
``max_wait_s``. With the count alone, 32 admitted decisions queued behind each other until answered ones took
~200 ms at 3,000 requests/s offered, twice the OpenRTB ``tmax``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import HTTPException

from adpilot.serve.metrics import Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

AD_ROUTES = ("/v1/decide", "/openrtb/2.6/bid")
ROUTE_PREFIXES = ("/v1/campaigns", "/v1/ads", "/v1/creatives", "/v1/advertisers")
KNOWN_ROUTES = (*AD_ROUTES, "/v1/events", "/v1/win", "/healthz", "/metrics", "/v1/admin/refresh", "/console")


class Inflight:
    """Counts requests in progress; ``enter`` refuses past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.now, self._lock = limit, 0, threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.now >= self.limit:
                return False
            self.now += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def route_label(path: str) -> str:
    """A bounded label for metrics: ids in paths never become label values."""
    for prefix in ROUTE_PREFIXES:
        if path.startswith(prefix):
            return prefix
    return path if path in KNOWN_ROUTES else "other"


class Guard:
    """Refuse oversized bodies (413), shed past ``inflight.limit`` or, on the ad routes, when the request's turn
    comes after it waited ``max_wait_s`` (fast no-bid on ad routes, 429 elsewhere), and count every request by route
    and status with its latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, inflight: Inflight, max_body_bytes: int,
                 max_wait_s: float) -> None:
        self.app, self.metrics, self.inflight, self.max_body = app, metrics, inflight, max_body_bytes
        self.max_wait_s = max_wait_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["arrived"] = started  # deadlines (OpenRTB ``tmax``) count from here
        path: str = scope["path"]
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        try:
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                await _answer(send_counted, 413, {"detail": f"body larger than {self.max_body} bytes"})
            elif (path in AD_ROUTES and not await self._in_time(started)) or not self.inflight.enter():
                self.metrics.shed.inc((route_label(path),))
                await _shed(path, send_counted)
            else:
                # a declared length was checked above (the server reads no more body than it declares)
                limited = receive if length is not None else self._limited(receive)
                try:
                    await self.app(scope, limited, send_counted)
                finally:
                    self.inflight.leave()
        finally:
            label = route_label(path)
            self.metrics.requests.inc((label, str(status)))
            self.metrics.latency.observe((label,), time.perf_counter() - started)

    async def _in_time(self, arrived: float) -> bool:
        """Let the requests read with this one check in, then: is it still worth deciding?"""
        await asyncio.sleep(0)
        return time.perf_counter() - arrived <= self.max_wait_s

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, f"body larger than {self.max_body} bytes")
            return message

        return receive_limited


async def _answer(send: Send, status: int, body: Any = None, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    payload = b"" if body is None else orjson.dumps(body)
    kind = ((b"content-type", b"application/json"),) if body is not None else ()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(payload)).encode()), *kind, *headers]})
    await send({"type": "http.response.body", "body": payload})


async def _shed(path: str, send: Send) -> None:
    """At capacity: OpenRTB gets a 204 no-bid, native decisions an empty decision, management a 429."""
    shed = ((b"x-adpilot-shed", b"1"),)
    if path == "/openrtb/2.6/bid":
        await _answer(send, 204, None, shed)
    elif path == "/v1/decide":
        await _answer(send, 200, {"request_id": "", "ads": [], "no_fill_reason": "server at capacity"}, shed)
    else:
        await _answer(send, 429, {"detail": "server at capacity, retry later"}, ((b"retry-after", b"1"), *shed))
