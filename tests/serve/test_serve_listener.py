"""``adpilot serve --workers N``: each worker process listens on a socket of its own (``SO_REUSEPORT``), so the
kernel deals connections out among them instead of the first worker to wake taking every waiting one."""

from __future__ import annotations

import pickle
import socket
from multiprocessing.reduction import ForkingPickler

from adpilot.serve.cli import reuse_port_socket


def test_a_worker_gets_its_own_listener_on_the_same_port() -> None:
    parent = reuse_port_socket(socket.AF_INET, ("127.0.0.1", 0))
    address = parent.getsockname()
    workers = [pickle.loads(ForkingPickler.dumps(parent)) for _ in range(2)]  # as uvicorn hands it to each worker
    try:
        for sock in workers:
            assert sock.fileno() != parent.fileno() and sock.getsockname() == address
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            sock.listen(128)
            sock.setblocking(False)
        clients = [socket.create_connection(address, timeout=2) for _ in range(64)]
        accepted = []
        for sock in workers:
            count = 0
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                count += 1
            accepted.append(count)
        for client in clients:
            client.close()
        assert sum(accepted) == 64  # none waits on the supervisor's socket, which never listens
        assert min(accepted) > 0  # dealt out by the kernel: all 64 on one worker has odds of 2**-63
    finally:
        for sock in (parent, *workers):
            sock.close()
