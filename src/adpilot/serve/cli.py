"""``adpilot serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import typer


def serve(
    host: str = typer.Option(None, help="Address to bind (default from ADPILOT_SERVE_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default from ADPILOT_SERVE_PORT, 8000)."),
    workers: int = typer.Option(None, help="Worker processes (default ADPILOT_SERVE_WORKERS); set "
                                           "ADPILOT_REDIS_URL so that they share budgets and caps."),
) -> None:
    """Serve decisions (JSON and OpenRTB 2.6), tracking events and the management API."""
    import uvicorn

    from adpilot.config import get_settings

    settings = get_settings()
    settings.require_production_secrets()
    n_workers = workers or settings.serve_workers
    if n_workers > 1 and not settings.redis_url:
        typer.secho("warning: several workers without ADPILOT_REDIS_URL do not share budgets", err=True)
    uvicorn.run("adpilot.serve.main:app_from_env", factory=True, host=host or settings.serve_host,
                port=port or settings.serve_port, workers=n_workers, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
