"""The server's front door, as plain ASGI middleware: body-size limit, load shedding and request metrics.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` copies every request and
response through an extra task and stream, which costs more than a whole decision under load. The body limit holds
for chunked uploads too (no ``Content-Length``): the bytes are counted as they arrive and the request is refused
with 413 once past the limit, before the body is buffered.

Shedding has two triggers. ``Inflight`` caps the requests in progress. On the ad routes, a request is also refused
at the door when it would wait too long for the engine (:class:`EngineQueue`): with the count alone, 32 admitted
decisions queued behind each other (and fought over the GIL) until answered ones took ~200 ms at 3,000 requests/s
offered, twice the OpenRTB ``tmax``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

import anyio
import anyio.to_thread
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
T = TypeVar("T")


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


class EngineQueue:
    """The ad routes' line to the engine: at most ``threads`` decisions run at once, in worker threads (faiss and
    BLAS release the GIL, so a decision overlaps the event loop's HTTP work), the others wait in arrival order.

    ``too_long`` is the door's question: has the oldest request in line already waited ``max_wait_s``? Then a new
    one would wait longer still, and is better answered with a no-bid now than with a late answer. The limit is
    generous on purpose: under a closed loop of clients a shed answer comes back at once as a new request, and a
    tight limit (40 ms) turned a machine hiccup into a storm of shed answers that served half the decisions.
    Only the event loop's thread touches the line, so it needs no lock.
    """

    def __init__(self, threads: int, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s
        self._limiter = anyio.CapacityLimiter(threads)
        self._waiting: deque[float] = deque()  # arrival times, oldest first

    def too_long(self, now: float) -> bool:
        return bool(self._waiting) and now - self._waiting[0] > self.max_wait_s

    async def run(self, arrived: float, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker thread once a place is free; ``arrived`` (perf_counter) is the request's."""
        self._waiting.append(arrived)
        try:
            await self._limiter.acquire()
        finally:
            self._waiting.remove(arrived)
        try:
            return await anyio.to_thread.run_sync(func, *args)
        finally:
            self._limiter.release()


def route_label(path: str) -> str:
    """A bounded label for metrics: ids in paths never become label values."""
    for prefix in ROUTE_PREFIXES:
        if path.startswith(prefix):
            return prefix
    return path if path in KNOWN_ROUTES else "other"


class Guard:
    """Refuse oversized bodies (413), shed past ``inflight.limit`` or, on the ad routes, when ``engine``'s line is
    too long (fast no-bid on ad routes, 429 elsewhere), and count every request by route and status with its
    latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, inflight: Inflight, engine: EngineQueue,
                 max_body_bytes: int) -> None:
        self.app, self.metrics, self.inflight, self.max_body = app, metrics, inflight, max_body_bytes
        self.engine = engine

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
            elif (path in AD_ROUTES and self.engine.too_long(started)) or not self.inflight.enter():
                self.metrics.shed.inc((route_label(path),))
                await _shed(path, send_counted)
            else:
                try:
                    await self.app(scope, self._limited(receive), send_counted)
                finally:
                    self.inflight.leave()
        finally:
            label = route_label(path)
            self.metrics.requests.inc((label, str(status)))
            self.metrics.latency.observe((label,), time.perf_counter() - started)

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
