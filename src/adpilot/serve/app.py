"""The FastAPI application: decisions (native JSON and OpenRTB 2.6), tracking events, management, health, metrics.

Thin edges over the decision engine: routes validate, translate and count; every decision is
:meth:`adpilot.deliver.engine.DecisionEngine.decide`. Past ``serve_max_inflight`` concurrent requests, ad requests
get a fast no-bid and management calls a 429, so overload never turns into queued time-outs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.feedback import AdEvent
from adpilot.errors import UserError
from adpilot.schema import AdRequest, Decision
from adpilot.serve import management
from adpilot.serve.auth import require_admin
from adpilot.serve.metrics import Gauge, Metrics
from adpilot.serve.openrtb import BidRequest, to_ad_request, to_bid_response
from adpilot.serve.repository import Repository, StoreBusy
from adpilot.store.privacy import pseudonymise

MAX_BODY_BYTES = 1_000_000
AD_ROUTES = ("/v1/decide", "/openrtb/2.6/bid")
EngineFactory = Callable[[], DecisionEngine]


class TrackingEvent(BaseModel):
    token: str = Field(min_length=10, max_length=2000)
    type: str = Field(pattern=r"^(impression|click|conversion)$")
    ts: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class EventBatch(BaseModel):
    events: list[TrackingEvent] = Field(min_length=1, max_length=1000)


class EventResult(BaseModel):
    accepted: int
    rejected: list[dict[str, Any]]


class _Inflight:
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


def create_app(settings: Settings, engine_factory: EngineFactory, compliance: Callable[..., list[str]]) -> FastAPI:
    """The app for one server process. ``engine_factory`` builds an engine on a fresh snapshot (start and refresh);
    ``compliance(text, language, slot) -> problems`` vets advertiser-written copy."""
    app = FastAPI(title="adpilot", version="0.1.0", description=__doc__)
    app.state.settings = settings
    app.state.repository = Repository(settings.resolved_store_path)
    app.state.compliance = compliance
    app.state.metrics = metrics = Metrics()
    app.state.engine = engine_factory()
    app.state.domains = app.state.repository.campaign_domains()
    app.state.refresh_lock = threading.Lock()
    inflight = _Inflight(settings.serve_max_inflight)
    metrics.gauges.append(Gauge("adpilot_inflight_requests", "Requests in progress.", (), lambda: {(): inflight.now}))
    metrics.gauges.append(Gauge("adpilot_campaign_spend", "Spend committed per campaign.", ("campaign",),
                                lambda: _spend(app.state.engine)))

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        route = request.url.path
        started = time.perf_counter()
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            response: Response = JSONResponse({"detail": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
        elif not inflight.enter():
            metrics.shed.inc((route,))
            response = _shed(route)
        else:
            try:
                response = await call_next(request)
            finally:
                inflight.leave()
        metrics.requests.inc((_route_label(route), str(response.status_code)))
        metrics.latency.observe((_route_label(route),), time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "problem": e["msg"]}
                    for e in error.errors()]
        return JSONResponse({"detail": problems}, 422)

    @app.exception_handler(UserError)
    async def user_error(_: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 400)

    @app.exception_handler(StoreBusy)
    async def busy(_: Request, error: StoreBusy) -> JSONResponse:
        return JSONResponse({"detail": "store busy, retry"}, 503, headers={"Retry-After": "1"})

    app.include_router(management.router)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        engine: DecisionEngine = app.state.engine
        snap = engine.snapshot
        return {"status": "ok", "ads": len(snap.ads.ids), "users": len(snap.users), "built_at": snap.built_at}

    @app.get("/metrics", response_class=PlainTextResponse)
    def read_metrics() -> str:
        return metrics.render()

    @app.post("/v1/decide")
    def decide(body: AdRequest) -> Decision:
        """One ad request → placed ads with tracking tokens, or a no-fill with its reason."""
        decision = _decide(app, body)
        if not decision.ads:
            metrics.no_fill.inc((_reason_label(decision.no_fill_reason),))
        return decision

    @app.post("/openrtb/2.6/bid", response_model=None, responses={204: {"description": "no bid"}})
    def openrtb_bid(body: BidRequest, request: Request) -> Response | dict[str, Any]:
        """OpenRTB 2.6 BidRequest → BidResponse, or 204 when nothing bids or ``tmax`` would be missed."""
        deadline = time.perf_counter() + (body.tmax or 100) / 1000.0 * 0.8
        decisions = []
        for imp in body.imp:
            if time.perf_counter() > deadline:
                break
            decisions.append((imp, _decide(app, to_ad_request(body, imp))))
        if time.perf_counter() > deadline:
            metrics.no_fill.inc(("tmax",))
            return Response(status_code=204)
        nurl = f"{str(request.base_url).rstrip('/')}/v1/win"
        response = to_bid_response(body, decisions, nurl, app.state.domains)
        if response is None:
            metrics.no_fill.inc(("no_bid",))
            return Response(status_code=204)
        return response.model_dump()

    @app.post("/v1/events")
    def events(body: EventBatch | TrackingEvent) -> EventResult:
        """Impression / click / conversion callbacks; duplicates and forged tokens are rejected, never counted."""
        batch = body.events if isinstance(body, EventBatch) else [body]
        engine: DecisionEngine = app.state.engine
        accepted, rejected = 0, []
        for i, item in enumerate(batch):
            outcome = engine.record(AdEvent(token=item.token, type=item.type, ts=item.ts, value=item.value))  # type: ignore[arg-type]
            metrics.events.inc((item.type, "accepted" if outcome.accepted else "rejected"))
            if outcome.accepted:
                accepted += 1
                app.state.spool.append(outcome.row)
            else:
                rejected.append({"index": i, "reason": outcome.reason})
        if not accepted and rejected:
            raise HTTPException(400, {"message": "no event accepted", "rejected": rejected})
        return EventResult(accepted=accepted, rejected=rejected)

    @app.post("/v1/admin/refresh", dependencies=[Depends(require_admin)])
    def refresh() -> dict[str, Any]:
        """Rebuild the snapshot from the store and swap it in; requests in flight finish on the old one."""
        with app.state.refresh_lock:
            fresh = engine_factory()
            app.state.engine.refresh(fresh.snapshot)
            app.state.domains = app.state.repository.campaign_domains()
        return {"status": "refreshed", "ads": len(app.state.engine.snapshot.ads.ids)}

    app.state.spool = []
    return app


def _decide(app: FastAPI, body: AdRequest) -> Decision:
    """Pseudonymise the caller's user id the way ingest does, then run the one decision path."""
    if body.user_id is not None:
        body = body.model_copy(update={"user_id": pseudonymise(body.user_id, app.state.settings.secret)})
    engine: DecisionEngine = app.state.engine
    return engine.decide(body)


def _shed(route: str) -> Response:
    if route == "/openrtb/2.6/bid":
        return Response(status_code=204, headers={"X-Adpilot-Shed": "1"})
    if route == "/v1/decide":
        return JSONResponse({"request_id": "", "ads": [], "no_fill_reason": "server at capacity"}, 200,
                            headers={"X-Adpilot-Shed": "1"})
    return JSONResponse({"detail": "server at capacity, retry later"}, 429, headers={"Retry-After": "1"})


def _route_label(path: str) -> str:
    for prefix in ("/v1/campaigns", "/v1/ads", "/v1/creatives", "/v1/advertisers"):
        if path.startswith(prefix):
            return prefix
    return path if path in (*AD_ROUTES, "/v1/events", "/healthz", "/metrics", "/v1/admin/refresh") else "other"


def _reason_label(reason: str | None) -> str:
    return (reason or "unknown").split(" (")[0][:60]


def _spend(engine: DecisionEngine) -> dict[tuple[str, ...], float]:
    ids = engine.snapshot.campaigns.ids.tolist()
    if not ids:
        return {}
    today = time.strftime("%Y-%m-%d")
    spent, _, _ = engine.counters.budget_state(ids, [today] * len(ids), time.time())
    return {(cid,): float(s) for cid, s in zip(ids, spent, strict=True)}

