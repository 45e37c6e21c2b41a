"""The uvicorn entry point: ``uvicorn --factory adpilot.serve.main:app_from_env`` (what ``adpilot serve`` runs)."""

from __future__ import annotations

from fastapi import FastAPI

from adpilot.config import get_settings
from adpilot.create.compliance import Policy, check
from adpilot.serve.app import create_app
from adpilot.serve.wiring import engine_factory


def vet_copy(text: str, language: str, slot: str | None) -> list[str]:
    """Advertising-law problems of advertiser-written copy, as sentences (empty = compliant)."""
    return [str(v) for v in check(text, Policy(language=language))]


def app_from_env() -> FastAPI:
    """One process's app, configured from ``ADPILOT_*`` environment variables.

    BLAS and OpenMP are held to one thread per call: a decision multiplies matrices of a few hundred rows, and
    with the request threads of a server each spawning BLAS threads on 2 cores, their contention cost more than the
    arithmetic (``/v1/decide`` throughput 298 → 439 req/s measured with ``benchmarks/bench_serve_load.py``)."""
    from threadpoolctl import threadpool_limits

    settings = get_settings()
    settings.require_production_secrets()
    app = create_app(settings, engine_factory(settings), vet_copy)
    threadpool_limits(limits=1)
    return app
