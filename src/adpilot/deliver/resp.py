"""A lean Redis connection for the decision path's scripts: ``EVALSHA`` as RESP2 bytes over one socket per thread.

A decision makes two script calls. Through redis-py each costs ~64 µs of client CPU (connection-pool checkout,
command encoding, the general reply parser) against ~13 µs for the same bytes on a bare socket (loopback, measured
here); the scripts return one bulk string, so this reads only the simple reply types. Everything else (script
loading, events, bandit counts) stays on redis-py.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence


class ReplyError(RuntimeError):
    """Redis answered a command with an error line (e.g. ``NOSCRIPT``, a Lua runtime error)."""


class ScriptConnection:
    """``evalsha`` on a socket of the calling thread, opened on first use (and again after any socket error, or in
    a forked child). ``url`` is a ``redis://`` / ``rediss``-less / ``unix://`` URL as redis-py reads it; socket
    errors and time-outs raise :class:`OSError` (``TimeoutError`` included) and leave no half-read socket behind."""

    def __init__(self, url: str, timeout_s: float) -> None:
        from redis.connection import parse_url

        options = parse_url(url)
        self._address: str | tuple[str, int] = options.get("path") or (
            options.get("host") or "localhost", int(options.get("port") or 6379))
        hello: list[tuple[str, ...]] = []
        if options.get("password"):
            user = options.get("username")
            hello.append(("AUTH", user, options["password"]) if user else ("AUTH", options["password"]))
        if int(options.get("db") or 0):
            hello.append(("SELECT", str(options["db"])))
        self._hello = hello
        self._timeout = timeout_s
        self._local = threading.local()

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[str | int]) -> bytes | int | None:
        """The script's reply: a bulk string (bytes), an integer, or None for nil."""
        return self.call("EVALSHA", sha, len(keys), *keys, *args)

    def call(self, *parts: str | int) -> bytes | int | None:
        sock, buffer = self._connection()
        try:
            sock.sendall(_pack(parts))
            return _reply(sock, buffer)
        except OSError:
            self._drop()
            raise

    def _connection(self) -> tuple[socket.socket, bytearray]:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.pid, local.sock, local.buffer = os.getpid(), None, bytearray()
        if local.sock is None:
            if isinstance(self._address, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._timeout)
            try:
                sock.connect(self._address)
                for command in self._hello:
                    sock.sendall(_pack(command))
                    _reply(sock, local.buffer)
            except (OSError, ReplyError):
                sock.close()
                local.buffer.clear()
                raise
            local.sock = sock
        return local.sock, local.buffer

    def _drop(self) -> None:
        local = self._local
        if getattr(local, "sock", None) is not None:
            local.sock.close()
        local.sock = None
        local.buffer = bytearray()


def _pack(parts: Sequence[str | int]) -> bytes:
    """A RESP2 array of bulk strings.

    >>> _pack(("GET", "k"))
    b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n'
    """
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode() if isinstance(part, str) else b"%d" % part
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _reply(sock: socket.socket, buffer: bytearray) -> bytes | int | None:
    """One reply read from ``buffer`` then ``sock``: bulk string, nil, integer, simple string, or an error."""
    while True:
        end = buffer.find(b"\r\n")
        if end > 0:
            kind, line = buffer[0], bytes(buffer[1:end])
            if kind == ord("$"):
                size = int(line)
                if size < 0:
                    del buffer[:end + 2]
                    return None
                if len(buffer) >= end + 4 + size:
                    value = bytes(buffer[end + 2:end + 2 + size])
                    del buffer[:end + 4 + size]
                    return value
            else:
                del buffer[:end + 2]
                if kind == ord(":"):
                    return int(line)
                if kind == ord("+"):
                    return line
                if kind == ord("-"):
                    raise ReplyError(line.decode("utf-8", "replace"))
                raise ConnectionError(f"unexpected reply type {chr(kind)!r} for a script call")  # drops the socket
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        buffer += chunk
