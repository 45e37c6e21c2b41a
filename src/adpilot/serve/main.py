"""The uvicorn entry point: ``uvicorn --factory adpilot.serve.main:app_from_env`` (what ``adpilot serve`` runs)."""

from __future__ import annotations

import os

# Before faiss and numpy load their OpenMP runtime: OpenMP reads its thread count per thread, so a limit set later
# (``threadpool_limits`` below) holds in the thread that set it but not in threads started afterwards.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from fastapi import FastAPI  # noqa: E402

from adpilot.config import get_settings  # noqa: E402
from adpilot.create.compliance import Policy, check  # noqa: E402
from adpilot.create.prompts import SLOT_LIMITS  # noqa: E402
from adpilot.serve.app import create_app  # noqa: E402
from adpilot.serve.wiring import engine_factory  # noqa: E402


def vet_copy(text: str, language: str, slot: str | None) -> list[str]:
    """Advertising-law problems of advertiser-written copy, as sentences (empty = compliant). A known creative slot
    sets the length limit (so a banner's short keyword line is not held to the prose rules of a feed); copy for any
    other slot, or for none, may run as a banner, so it is not held to them either."""
    if slot in SLOT_LIMITS:
        policy = Policy(language=language, max_chars=SLOT_LIMITS[slot] * (3 if language == "en" else 1))
    else:
        policy = Policy(language=language, prose=False)
    return [str(v) for v in check(text, policy)]


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
