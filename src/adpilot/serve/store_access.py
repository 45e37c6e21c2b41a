"""How server processes share one DuckDB file: many readers at once, or one writer, never both.

DuckDB locks the file per process: any number of processes may hold it read-only at the same time, or one process
read-write, and inside one process every connection to a file must have the same mode. So a server process never
keeps the store open between requests. Snapshot builds and management reads open it read-only (every worker of
``adpilot serve --workers N`` builds its snapshot at once, in parallel); writes (management changes, the event
spool) open it read-write for one short statement. An opening that conflicts with another process is retried
until ``wait_s``; within a process, one lock per file makes openings take turns, so a read-only snapshot build
and a write never meet inside one process.

Writes are short, so waiting readers and writers get in within milliseconds. The long holder is a snapshot build
(read-only, seconds at a million profiles): writes wait for it or, past ``wait_s``, fail with :class:`StoreBusy`
(a 503 for management, a retry on the next round for the event spool, which loses nothing).

Snapshot builds take turns across processes (:meth:`StoreAccess.build_turn`, a lock file beside the store): a
build peaks at several times the snapshot's memory (~7 GB for a million profiles, 2.6 GB once built), and the
workers of one server building at once were killed by the kernel for memory on a 23 GB machine.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb

from adpilot.store import Store
from adpilot.store.tables import DROPPED, RELAXED, TABLES


class _Closable(Protocol):
    """What `_held` closes: a DuckDB connection or a `Store`."""

    def close(self) -> None: ...


T = TypeVar("T")
C = TypeVar("C", bound=_Closable)
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
_RETRY_PAUSE_S = 0.01


class StoreBusy(RuntimeError):
    """Another process held the store in a conflicting mode for longer than the wait allowed."""


def _process_lock(path: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())


class StoreAccess:
    """Open-use-close access to one store file for a server process (see the module docstring).

    >>> import tempfile, os
    >>> access = StoreAccess(os.path.join(tempfile.mkdtemp(), "s.duckdb"))
    >>> access.create_tables()
    >>> with access.connect(read_only=True) as con:
    ...     con.execute("SELECT count(*) FROM campaigns").fetchone()
    (0,)
    """

    def __init__(self, path: str | Path, wait_s: float = 3.0) -> None:
        self.path, self.wait_s = str(path), wait_s
        self._lock = _process_lock(self.path)

    def _opened(self, opener: Callable[[], T], wait_s: float | None) -> T:
        """``opener()`` retried while another process holds the file in a conflicting mode (the caller holds
        ``self._lock``)."""
        deadline = time.monotonic() + (self.wait_s if wait_s is None else wait_s)
        while True:
            try:
                return opener()
            except duckdb.IOException as busy:  # the other process's file lock
                if time.monotonic() > deadline:
                    raise StoreBusy(f"the store {self.path} stayed locked by another process: {busy}") from busy
                time.sleep(_RETRY_PAUSE_S)

    @contextmanager
    def _turn(self, wait_s: float | None) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.wait_s if wait_s is None else wait_s):
            raise StoreBusy(f"the store {self.path} is in use by this process (a snapshot build) for too long")
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def _held(self, opener: Callable[[], C], wait_s: float | None) -> Iterator[C]:
        """What ``opener()`` opens (a connection, a :class:`Store`), in this process's turn, closed afterwards."""
        with self._turn(wait_s):
            handle = self._opened(opener, wait_s)
            try:
                yield handle
            finally:
                handle.close()

    def connect(self, read_only: bool,
                wait_s: float | None = None) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A raw connection for one unit of work, closed afterwards."""
        return self._held(lambda: duckdb.connect(self.path, read_only=read_only), wait_s)

    @contextmanager
    def build_turn(self) -> Iterator[None]:
        """Hold the store's snapshot-build turn (one process at a time, waiting as long as it takes)."""
        with open(f"{self.path}.build.lock", "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
            yield

    def reader(self, wait_s: float | None = None) -> AbstractContextManager[Store]:
        """The store read-only, e.g. to build a snapshot while other workers do the same."""
        return self._held(lambda: Store(self.path, read_only=True), wait_s)

    def create_tables(self, wait_s: float | None = None) -> None:
        """Create missing tables and bring a store made by an earlier version to the current columns
        (:func:`adpilot.store.tables.migrate`: the server's writes assume them), once per process at start.
        Looks read-only first: when the store is current (the usual case), a starting worker does not wait for
        the others' snapshot builds to end."""
        if Path(self.path).exists():
            with self.connect(read_only=True, wait_s=wait_s) as con:
                if _current(con):
                    return
        with self._held(lambda: Store(self.path), wait_s):
            pass  # opening read-write creates and migrates


def _current(con: duckdb.DuckDBPyConnection) -> bool:
    """Every table present, without a column an earlier version left behind (dropped, or still NOT NULL)."""
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    nullable = dict(((t, c), n) for t, c, n in con.execute(
        "SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall())
    return (set(TABLES) <= present and not any(key in nullable for key in DROPPED)
            and all(nullable.get(key) != "NO" for key in RELAXED))
