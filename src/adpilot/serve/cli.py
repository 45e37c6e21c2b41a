"""``adpilot serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import socket
from typing import Any

import typer

# uvicorn kills a worker that leaves its health check unanswered this long; a snapshot build (seconds of GIL-holding
# table conversion at a million profiles, on a busy machine) must not count as hung (uvicorn's default is 5 s)
HEALTHCHECK_S = 60
APP = "adpilot.serve.main:app_from_env"


def reuse_port_socket(family: int, address: tuple[str, int]) -> socket.socket:
    """A TCP socket bound to ``address`` with ``SO_REUSEPORT``, not yet listening."""
    sock = _WorkerListener(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class _WorkerListener(socket.socket):
    """The listening address of ``--workers`` processes: handed to a worker process (pickled by uvicorn's process
    supervisor), it arrives there as a socket of that worker's own, bound to the same address with
    ``SO_REUSEPORT``, so the kernel deals the connections out among the workers.

    With one socket shared by every worker (uvicorn's way) each connection went to whichever worker woke first,
    and that one accepted every connection waiting: measured with 2 workers, wrk's 4 connections all landed on one
    worker in 3 of 6 runs, which then served them alone (decide 574/s against 865/s). The kernel's share is by a
    hash of the connection's addresses: even on average, random for a handful of connections (all 4 on one worker
    in 1 run of 8). The supervisor's own socket is bound but never listens, so no connection waits on it.
    """

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return reuse_port_socket, (self.family, self.getsockname()[:2])


def run_server(host: str, port: int, workers: int) -> None:
    """The app under uvicorn: in this process, or in ``workers`` processes (uvicorn's supervisor restarts a worker
    that dies or hangs) each listening on a socket of its own."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(APP, factory=True, host=host, port=port, workers=workers, log_level="warning",
                            access_log=False, timeout_worker_healthcheck=HEALTHCHECK_S)
    if workers == 1:
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise SystemExit(STARTUP_FAILURE)
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    Multiprocess(config, sockets=[reuse_port_socket(family, (host, port))]).run()


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
    from adpilot.config import get_settings
    from adpilot.errors import UserError

    settings = get_settings()
    settings.require_production_secrets()
    n_workers = workers or settings.serve_workers
    if n_workers > 1 and not settings.redis_url:
        raise UserError(f"`workers` = {n_workers} needs ADPILOT_REDIS_URL: without shared counters each worker "
                        "would spend every budget in full")
    run_server(host or settings.serve_host, port or settings.serve_port, n_workers)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
