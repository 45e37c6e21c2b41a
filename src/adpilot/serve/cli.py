"""``adpilot serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import typer

# uvicorn kills a worker that leaves its health check unanswered this long; a snapshot build (seconds of GIL-holding
# table conversion at a million profiles, on a busy machine) must not count as hung (uvicorn's default is 5 s)
HEALTHCHECK_S = 60


def serve(
    host: str = typer.Option(None, help="Address to bind (default from ADPILOT_SERVE_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default from ADPILOT_SERVE_PORT, 8000)."),
    workers: int = typer.Option(None, min=1, help="Worker processes (default ADPILOT_SERVE_WORKERS); more than "
                                                  "one needs ADPILOT_REDIS_URL, where they share budgets and caps."),
) -> None:
    """Serve decisions (JSON and OpenRTB 2.6), tracking events and the management API.

    Each worker builds its own snapshot from the store (read-only, one after the other: a build's memory peak is
    several times the snapshot's) and shares budgets, frequency caps and event de-duplication with the others
    through Redis."""
    import uvicorn

    from adpilot.config import get_settings
    from adpilot.errors import UserError

    settings = get_settings()
    settings.require_production_secrets()
    n_workers = workers or settings.serve_workers
    if n_workers > 1 and not settings.redis_url:
        raise UserError(f"`workers` = {n_workers} needs ADPILOT_REDIS_URL: without shared counters each worker "
                        "would spend every budget in full")
    uvicorn.run("adpilot.serve.main:app_from_env", factory=True, host=host or settings.serve_host,
                port=port or settings.serve_port, workers=n_workers, log_level="warning",
                timeout_worker_healthcheck=HEALTHCHECK_S)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
