"""Accepted tracking events on their way into the store's ``events`` table (the feedback the next training reads).

Events are answered from memory and written in batches by one background thread, so that an event request never
waits on DuckDB's single-writer lock. Rows that could not be written (store busy: another worker writing, or
building its snapshot) stay queued for the next round; the insert skips event ids already stored, so a retried
batch is never counted twice. At shutdown the spool keeps trying for ``final_wait_s`` before it gives up.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from adpilot.serve.repository import Repository, StoreBusy


class EventSpool:
    """A queue of event rows (``EVENT_ARROW_SCHEMA`` columns) flushed every ``interval_s`` seconds."""

    def __init__(self, repository: Repository, interval_s: float = 2.0, final_wait_s: float = 120.0) -> None:
        self.repository, self.interval_s, self.final_wait_s = repository, interval_s, final_wait_s
        self.written = 0
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def append(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)

    @property
    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Write what is queued; returns the rows stored now (0 when the store stayed busy: they are kept)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        try:
            stored = self.repository.append_events(rows)
        except StoreBusy:
            with self._lock:
                self._rows[:0] = rows
            return 0
        self.written += stored
        return stored

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="adpilot-event-spool", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left, waiting out other processes' turns on the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + self.final_wait_s
        while self.flush() == 0 and self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pending:
            print(f"adpilot: {self.pending} accepted events could not be written: the store stayed busy",
                  file=sys.stderr)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.flush()
