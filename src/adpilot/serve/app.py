"""The FastAPI application: decisions (native JSON and OpenRTB 2.6), tracking events, management, health, metrics.

Thin edges over the decision engine: routes validate, translate and count; every decision is
:meth:`adpilot.deliver.engine.DecisionEngine.decide`. Past ``serve_max_inflight`` concurrent requests, ad requests
get a fast no-bid and management calls a 429, so overload never turns into queued time-outs; ad requests also get
the no-bid when their turn comes after they waited ``MAX_QUEUE_WAIT_S`` (:class:`adpilot.serve.guard.Guard`).

Well-formed ad requests take the fast lane (:mod:`adpilot.serve.fastpath`) to the same handlers, and their
decisions run on the event loop itself, one at a time: a process is worth one core (the GIL), and more cores are
more worker processes (``adpilot serve --workers``). Handing each decision to a worker thread instead (so that
faiss and BLAS, which release the GIL, overlapped the loop's HTTP work) cost more than it overlapped: with a stub
engine, a decide's HTTP path took 144 µs of CPU with the hand-off (thread wake-ups, GIL transfers) and 37 µs
without; under load, a decide request cost 1.34 rather than 1.60 CPU ms (one worker, Redis counters).
"""

from __future__ import annotations

import functools
import gc
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, Field

from adpilot.config import Settings
from adpilot.deliver.engine import DecisionEngine
from adpilot.deliver.feedback import AdEvent, FeedbackOutcome
from adpilot.deliver.targeting import LocalClock
from adpilot.errors import UserError
from adpilot.schema import AdRequest, Decision
from adpilot.serve import console, management
from adpilot.serve.auth import require_admin
from adpilot.serve.broadcast import RefreshBroadcast
from adpilot.serve.fastpath import AdFastPath
from adpilot.serve.guard import Guard, Inflight, Scope
from adpilot.serve.metrics import Gauge, Metrics
from adpilot.serve.openrtb import BidRequest, BidResponse, currency_ok, to_ad_request, to_bid_response
from adpilot.serve.repository import Repository, StoreBusy
from adpilot.serve.spool import EventSpool
from adpilot.store.privacy import pseudonymise

MAX_BODY_BYTES = 1_000_000
DEFAULT_TMAX_MS = 100  # when a bid request names no ``tmax``
TMAX_MARGIN = 0.8  # answer within this share of ``tmax``: the rest is the network's
MAX_QUEUE_WAIT_S = 0.04  # shed an ad request whose turn on the event loop comes after it waited this long
# FastAPI's own OpenTelemetry hooks, off: the server exposes Prometheus metrics (``/metrics``), and asking on every
# request whether a tracer, meter or logger provider had been configured since cost ~4 µs of a decide's HTTP path
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
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


class WinResult(BaseModel):
    recorded: bool = Field(description="False when this token's impression was already recorded (idempotent).")
    reason: str | None = None


def create_app(settings: Settings, engine_factory: EngineFactory, compliance: Callable[..., list[str]]) -> FastAPI:
    """The app for one server process. ``engine_factory`` builds an engine on a fresh snapshot (start and refresh);
    ``compliance(text, language, slot) -> problems`` vets advertiser-written copy."""
    repository = Repository(settings.resolved_store_path)
    spool = EventSpool(repository)

    def rebuild() -> int:
        """A fresh snapshot from the store, swapped in; returns its ad count."""
        with app.state.refresh_lock:
            fresh = engine_factory()
            app.state.engine.refresh(fresh.snapshot)
            del fresh
            _settle_heap()
            return len(app.state.engine.snapshot.ads.ids)

    broadcast = RefreshBroadcast(settings.redis_url, rebuild) if settings.redis_url else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        spool.start()
        if broadcast is not None:
            broadcast.start()
        try:
            yield
        finally:
            if broadcast is not None:
                broadcast.stop()
            spool.stop()

    app = FastAPI(title="adpilot", version="0.1.0", description=__doc__, lifespan=lifespan, telemetry=NO_TELEMETRY)
    app.state.settings = settings
    app.state.repository = repository
    app.state.spool = spool
    app.state.compliance = compliance
    app.state.metrics = metrics = Metrics()
    app.state.engine = engine_factory()
    _settle_heap()
    app.state.refresh_lock = threading.Lock()
    inflight = Inflight(settings.serve_max_inflight)
    metrics.gauges.append(Gauge("adpilot_process_pid", "This worker's process id: each worker of a server exposes "
                                "its own series.", (), lambda: {(): float(os.getpid())}))
    metrics.gauges.append(Gauge("adpilot_inflight_requests", "Requests in progress.", (), lambda: {(): inflight.now}))
    metrics.gauges.append(Gauge("adpilot_events_pending", "Accepted events not yet written to the store.", (),
                                lambda: {(): spool.pending}))
    metrics.gauges.append(Gauge("adpilot_campaign_spend", "Spend committed per campaign (all time).", ("campaign",),
                                lambda: _budgets(app.state.engine)[0]))
    metrics.gauges.append(Gauge("adpilot_campaign_budget_remaining", "Budget left today, net of reservations.",
                                ("campaign",), lambda: _budgets(app.state.engine)[1]))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_problem(e) for e in error.errors()]}, 422)

    @app.exception_handler(UserError)
    async def user_error(_: Request, error: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, 400)

    @app.exception_handler(StoreBusy)
    async def busy(_: Request, error: StoreBusy) -> JSONResponse:
        return JSONResponse({"detail": "store busy, retry"}, 503, headers={"Retry-After": "1"})

    app.include_router(management.router)
    app.include_router(console.router)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        engine: DecisionEngine = app.state.engine
        snap = engine.snapshot
        return {"status": "ok", "ads": len(snap.ads.ids), "users": len(snap.users), "built_at": snap.built_at,
                "pid": os.getpid()}

    @app.get("/metrics", response_class=PlainTextResponse)
    def read_metrics() -> str:
        return metrics.render()

    def answer_decide(body: AdRequest, _: Request) -> Response:
        decision = _decide(app, body)
        if not decision.ads:
            metrics.no_fill.inc((_reason_label(decision.no_fill_reason),))
        return _json(decision)

    def answer_bid(body: BidRequest, request: Request) -> Response:
        arrived = request.scope.get("state", {}).get("arrived", time.perf_counter())
        deadline = arrived + (body.tmax or DEFAULT_TMAX_MS) / 1000.0 * TMAX_MARGIN
        if not currency_ok(body):
            metrics.no_fill.inc(("currency",))
            return Response(status_code=204)
        decisions = []
        for imp in body.imp:
            if time.perf_counter() > deadline:
                break
            decisions.append((imp, _decide(app, to_ad_request(body, imp))))
        if time.perf_counter() > deadline:
            for _, late in decisions:
                _withdraw(app.state.engine, late, late.ads)
            metrics.no_fill.inc(("tmax",))
            return Response(status_code=204)
        response = to_bid_response(body, decisions, _win_url(request.scope), app.state.engine.snapshot.campaigns)
        if response is None:
            metrics.no_fill.inc(("no_bid",))
            return Response(status_code=204)
        return _json(response)

    @app.post("/v1/decide", response_model=Decision)
    def decide(body: AdRequest, request: Request) -> Response:
        """One ad request → placed ads with tracking tokens, or a no-fill with its reason."""
        return answer_decide(body, request)

    @app.post("/openrtb/2.6/bid", response_model=BidResponse, responses={204: {"description": "no bid"}})
    def openrtb_bid(body: BidRequest, request: Request) -> Response:
        """OpenRTB 2.6 BidRequest → BidResponse, or 204 when nothing bids or ``tmax`` would be missed.

        ``tmax`` counts from the request's arrival (queueing included); a decision that comes too late is
        withdrawn — its budget reservations released — and the answer is a no-bid."""
        return answer_bid(body, request)

    # middleware: the one added last runs first, so the guard sees every request before the fast lane
    app.add_middleware(AdFastPath, fastapi_app=app,
                       routes={"/v1/decide": (AdRequest, answer_decide), "/openrtb/2.6/bid": (BidRequest, answer_bid)})
    app.add_middleware(Guard, metrics=metrics, inflight=inflight, max_body_bytes=MAX_BODY_BYTES,
                       max_wait_s=MAX_QUEUE_WAIT_S)

    @app.post("/v1/events")
    def events(body: EventBatch | TrackingEvent) -> EventResult:
        """Impression / click / conversion callbacks; duplicates and forged tokens are rejected, never counted."""
        batch = body.events if isinstance(body, EventBatch) else [body]
        accepted, rejected = 0, []
        for i, item in enumerate(batch):
            outcome = _record(app, AdEvent(token=item.token, type=item.type, ts=item.ts,  # type: ignore[arg-type]
                                           value=item.value))
            if outcome.accepted:
                accepted += 1
            else:
                rejected.append({"index": i, "reason": outcome.reason})
        if not accepted and rejected:
            raise HTTPException(400, {"message": "no event accepted", "rejected": rejected})
        return EventResult(accepted=accepted, rejected=rejected)

    @app.get("/v1/win")
    def win(t: Annotated[str, Query(min_length=10, max_length=2000, description="the bid's tracking token")],
            price: Annotated[float | None, Query(ge=0, allow_inf_nan=False,
                                                 description="clearing price (CPM), ${AUCTION_PRICE}")] = None,
            ) -> WinResult:
        """OpenRTB win notice (``nurl``): records the impression of the token's ad once; repeats answer
        ``recorded: false`` and count nothing. A forged or expired token is a 400."""
        outcome = _record(app, AdEvent(token=t, type="impression"))
        if outcome.accepted:
            return WinResult(recorded=True)
        if outcome.reason and outcome.reason.startswith("duplicate"):
            return WinResult(recorded=False, reason=outcome.reason)
        raise HTTPException(400, f"`t` is not a valid win token: {outcome.reason}")

    @app.post("/v1/admin/refresh", dependencies=[Depends(require_admin)])
    def refresh() -> dict[str, Any]:
        """Rebuild the snapshot from the store and swap it in; requests in flight finish on the old one. With
        Redis, the other worker processes are told to do the same (``workers_notified``; they rebuild in the
        background; ``null`` when Redis could not be reached)."""
        ads = rebuild()
        notified = broadcast.announce() if broadcast is not None else 0
        return {"status": "refreshed", "ads": ads, "workers_notified": notified}

    return app


def _settle_heap() -> None:
    """Move what is alive now (the snapshot: ids, maps, caches) out of the cyclic collector's sight.

    Python's full collection walks every tracked object: with a 1M-profile snapshot one took ~50 ms of the event
    loop (measured on the engine with ``gc.callbacks``), a stall every few thousand requests. Frozen objects are still
    freed by reference counting; unfreezing first lets the next full collection find cycles in a replaced snapshot."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _json(model: BaseModel) -> Response:
    """A model rendered by pydantic-core straight to JSON bytes: the model was built by our code, so FastAPI's
    re-validation and ``jsonable_encoder`` pass are skipped (the declared ``response_model`` still documents it)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _win_url(scope: Scope) -> str:
    """The win notice's URL on this server as the request addressed it (Starlette's ``base_url``: scheme, ``Host``
    header, root path), looked up by those parts: building it cost ~13 µs of an OpenRTB request's path."""
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    server = scope.get("server")
    return _win_url_of(scope.get("scheme", "http"), host, None if server is None else tuple(server),
                       scope.get("root_path", ""), scope.get("app_root_path"))


@functools.lru_cache(maxsize=64)  # bounded: ``Host`` is the client's to choose
def _win_url_of(scheme: str, host: bytes | None, server: tuple[str, int] | None, root_path: str,
                app_root_path: str | None) -> str:
    scope: Scope = {"type": "http", "scheme": scheme, "server": server, "root_path": root_path, "path": "/",
                    "query_string": b"", "headers": [] if host is None else [(b"host", host)]}
    if app_root_path is not None:
        scope["app_root_path"] = app_root_path
    return f"{str(Request(scope).base_url).rstrip('/')}/v1/win"


def _problem(error: Any) -> dict[str, str]:
    """One validation error as ``{field, problem}``; malformed JSON names the body and the position."""
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "JSON decode error")
        return {"field": "body", "problem": f"malformed JSON at character {error['loc'][-1]}: {reason}"}
    return {"field": ".".join(str(p) for p in error["loc"] if p != "body") or "body", "problem": error["msg"]}


def _decide(app: FastAPI, body: AdRequest) -> Decision:
    """Pseudonymise the caller's user id the way ingest does and run the one decision path (which also applies
    the request's block lists, before the auction)."""
    if body.user_id is not None:
        body = body.model_copy(update={"user_id": pseudonymise(body.user_id, app.state.settings.secret)})
    engine: DecisionEngine = app.state.engine
    return engine.decide(body)


def _withdraw(engine: DecisionEngine, decision: Decision, ads: list[Any]) -> None:
    """Release the budget reserved for placed ads that will not be shown (reservation id = token id,
    ``request_id/ad_id``, as in :class:`adpilot.deliver.tokens.TokenClaims`)."""
    for ad in ads:
        engine.counters.release(ad.campaign_id, f"{decision.request_id}/{ad.ad_id}")


def _record(app: FastAPI, event: AdEvent) -> FeedbackOutcome:
    """Apply one tracking event once; accepted rows go to the store through the spool."""
    engine: DecisionEngine = app.state.engine
    outcome = engine.record(event)
    app.state.metrics.events.inc((event.type, "accepted" if outcome.accepted else "rejected"))
    if outcome.accepted and outcome.row is not None:
        app.state.spool.append(outcome.row)
    return outcome


def _reason_label(reason: str | None) -> str:
    return (reason or "unknown").split(" (")[0][:60]


def _budgets(engine: DecisionEngine, chunk: int = 256) -> tuple[dict[tuple[str, ...], float],
                                                                dict[tuple[str, ...], float]]:
    """({campaign: spend so far}, {campaign: budget left today net of reservations}) from the shared counters, read
    ``chunk`` campaigns per call (one Redis call for thousands of campaigns outlasts the counters' time-out)."""
    camps = engine.snapshot.campaigns
    ids = camps.ids.tolist()
    now = time.time()
    clock = LocalClock.at(camps, now)
    spend: dict[tuple[str, ...], float] = {}
    left: dict[tuple[str, ...], float] = {}
    for start in range(0, len(ids), chunk):
        part = slice(start, start + chunk)
        spent, spent_day, reserved = engine.counters.budget_state(ids[part], [clock.day[t] for t in camps.tz_row[part]],
                                                                  now)
        rest = np.minimum(camps.total_budget[part] - spent, camps.daily_budget[part] - spent_day) - reserved
        spend.update({(c,): float(v) for c, v in zip(ids[part], spent, strict=True)})
        left.update({(c,): float(v) for c, v in zip(ids[part], rest, strict=True)})
    return spend, left
