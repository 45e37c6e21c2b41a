"""The server's store access: a store made by an earlier version is brought to the current columns when a server
process starts, so the event spool's inserts (which no longer fill dropped columns) are not refused."""

from __future__ import annotations

from pathlib import Path

import duckdb

from adpilot.serve.store_access import StoreAccess


def _events_columns(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'events'").fetchall()}


def test_starting_on_an_older_store_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    StoreAccess(path).create_tables()
    with duckdb.connect(str(path)) as con:  # the earlier layout's NOT NULL key, which serve no longer fills
        con.execute("ALTER TABLE events ADD COLUMN event_key VARCHAR DEFAULT 'k'")
        con.execute("ALTER TABLE events ALTER COLUMN event_key SET NOT NULL")
    assert "event_key" in _events_columns(path)
    StoreAccess(path).create_tables()
    assert "event_key" not in _events_columns(path)
    StoreAccess(path).create_tables()  # current now: a read-only look, nothing to do
