"""A real redis-server on a free loopback port (or a unix socket) with its own temp dir, for the Redis counters tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server(tmp: Path, unix_socket: bool = False) -> Iterator[str]:
    """Start redis-server on 127.0.0.1 (or, with ``unix_socket``, on a socket file in ``tmp`` only), yield its URL,
    stop it. Raises FileNotFoundError without the binary."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    port, path = free_port(), tmp / "redis.sock"
    listen = ["--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"] if unix_socket else [
        "--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen([binary, *listen, "--dir", str(tmp), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                if unix_socket:
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.settimeout(0.2)
                        probe.connect(str(path))
                else:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        pass
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"unix://{path}?db=0" if unix_socket else f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
