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
    """One process's app, configured from ``ADPILOT_*`` environment variables."""
    settings = get_settings()
    settings.require_production_secrets()
    return create_app(settings, engine_factory(settings), vet_copy)
