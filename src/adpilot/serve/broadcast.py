"""Snapshot refreshes reach every worker: ``POST /v1/admin/refresh`` lands on one process, which rebuilds its own
snapshot and announces it on a Redis channel; the other workers (of this server, or of other servers sharing the
Redis) rebuild theirs when they hear it. Without Redis a server has one process and nothing to tell.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable


class RefreshBroadcast:
    """Publishes "rebuild your snapshot" and runs ``on_refresh`` when another process publishes it."""

    def __init__(self, url: str, on_refresh: Callable[[], object], prefix: str = "adpilot") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=1.0, decode_responses=True)
        self.channel = f"{prefix}:snapshot-refresh"
        self.on_refresh = on_refresh
        self.me = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="adpilot-refresh-listener", daemon=True)
        self._thread.start()
        self._subscribed.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def announce(self) -> int | None:
        """Tell the other processes; returns how many heard it (this one excluded), ``None`` without Redis."""
        from redis.exceptions import RedisError

        try:
            return max(0, int(self.client.publish(self.channel, self.me)) - 1)
        except RedisError:
            return None

    def _listen(self) -> None:
        """Subscribe and wait for announcements; a lost Redis connection is re-opened after a second."""
        from redis.exceptions import RedisError

        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self._subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("data") != self.me:
                        self._refresh(str(message.get("data")))
            except RedisError as error:
                print(f"adpilot: refresh channel unavailable ({error}); retrying", file=sys.stderr)
                self._stop.wait(1.0)
            finally:
                pubsub.close()

    def _refresh(self, announcer: str) -> None:
        try:
            self.on_refresh()
        except Exception as error:  # noqa: BLE001 - a failed rebuild keeps the old snapshot serving
            print(f"adpilot: snapshot refresh announced by {announcer} failed here: {error}", file=sys.stderr)
