"""Management reads and writes on the store, scoped to one advertiser.

Server processes never hold the DuckDB file open between requests (see :mod:`adpilot.serve.store_access`): each
call opens it — read-only to read, read-write to write — works and closes. Ownership is checked in SQL: an
advertiser's key reaches only rows that lead back to it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from adpilot.schema import EVENT_ARROW_SCHEMA
from adpilot.serve.store_access import StoreAccess, StoreBusy

__all__ = ["Repository", "StoreBusy", "hash_key", "new_api_key"]

T = TypeVar("T")

OWNER_SQL = {
    "campaigns": "SELECT c.campaign_id FROM campaigns c WHERE c.campaign_id = ? AND c.advertiser_id = ?",
    "ads": "SELECT a.ad_id FROM ads a JOIN campaigns c USING (campaign_id) WHERE a.ad_id = ? AND c.advertiser_id = ?",
    "creatives": (
        "SELECT r.creative_id FROM creatives r JOIN ads a USING (ad_id) JOIN campaigns c USING (campaign_id) "
        "WHERE r.creative_id = ? AND c.advertiser_id = ?"
    ),
}
KEY_COLUMN = {"campaigns": "campaign_id", "ads": "ad_id", "creatives": "creative_id", "advertisers": "advertiser_id"}
JSON_COLUMNS = {"targeting", "scores"}


def hash_key(api_key: str) -> str:
    """API keys are stored only as their SHA-256."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return "ak_" + secrets.token_urlsafe(24)


class Repository:
    """Owner-scoped CRUD over advertisers, campaigns, ads and creatives."""

    def __init__(self, store_path: str | Path, retry_s: float = 3.0) -> None:
        self.store_path = str(store_path)
        self.access = StoreAccess(store_path, wait_s=retry_s)
        self.access.create_tables(wait_s=max(retry_s, 60.0))  # other workers may be reading their snapshots

    def _run(self, work: Callable[[duckdb.DuckDBPyConnection], T], write: bool = False) -> T:
        with self.access.connect(read_only=not write) as con:
            return work(con)

    def advertiser_for_key(self, api_key: str) -> str | None:
        """The advertiser a key belongs to, or ``None``."""
        row = self._run(lambda con: con.execute(
            "SELECT advertiser_id FROM advertisers WHERE api_key_hash = ?", [hash_key(api_key)]).fetchone())
        return str(row[0]) if row else None

    def create_advertiser(self, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Insert an advertiser with a fresh API key; returns the row and the key (shown once)."""
        key = new_api_key()
        row = {**values, "api_key_hash": hash_key(key)}
        self.insert("advertisers", row)
        public = self.get("advertisers", values["advertiser_id"]) or row
        return public, key

    def owns(self, table: str, object_id: str, advertiser_id: str) -> bool:
        row = self._run(lambda con: con.execute(OWNER_SQL[table], [object_id, advertiser_id]).fetchone())
        return row is not None

    def exists(self, table: str, object_id: str) -> bool:
        sql = f"SELECT 1 FROM {table} WHERE {KEY_COLUMN[table]} = ?"
        return self._run(lambda con: con.execute(sql, [object_id]).fetchone()) is not None

    def insert(self, table: str, row: dict[str, Any]) -> None:
        columns = list(row)
        values = [_to_db(c, row[c]) for c in columns]
        quoted = ", ".join(f'"{c}"' for c in columns)
        sql = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})"
        self._run(lambda con: con.execute(sql, values), write=True)

    def update(self, table: str, object_id: str, changes: dict[str, Any]) -> None:
        if not changes:
            return
        assignments = ", ".join(f'"{c}" = ?' for c in changes)
        values = [_to_db(c, v) for c, v in changes.items()] + [object_id]
        sql = f"UPDATE {table} SET {assignments} WHERE {KEY_COLUMN[table]} = ?"
        self._run(lambda con: con.execute(sql, values), write=True)

    def get(self, table: str, object_id: str) -> dict[str, Any] | None:
        rows = self._select(f"SELECT * FROM {table} WHERE {KEY_COLUMN[table]} = ?", [object_id])
        return rows[0] if rows else None

    def list_owned(self, table: str, advertiser_id: str) -> list[dict[str, Any]]:
        scope = {
            "campaigns": "SELECT c.* FROM campaigns c WHERE c.advertiser_id = ?",
            "ads": "SELECT a.* FROM ads a JOIN campaigns c USING (campaign_id) WHERE c.advertiser_id = ?",
            "creatives": (
                "SELECT r.* FROM creatives r JOIN ads a USING (ad_id) JOIN campaigns c USING (campaign_id) "
                "WHERE c.advertiser_id = ?"
            ),
        }[table]
        return self._select(scope + f" ORDER BY {KEY_COLUMN[table]}", [advertiser_id])

    def campaign_report(self, campaign_id: str) -> dict[str, Any]:
        """Impressions, clicks, conversions and spend recorded in the store for one campaign."""
        sql = """
            SELECT count(*) FILTER (WHERE e.type = 'ad_impression') AS impressions,
                   count(*) FILTER (WHERE e.type = 'ad_click') AS clicks,
                   count(*) FILTER (WHERE e.type = 'conversion') AS conversions,
                   coalesce(sum(e.price) FILTER (WHERE e.type IN ('ad_impression', 'ad_click')), 0) AS spend,
                   coalesce(sum(e.value) FILTER (WHERE e.type = 'conversion'), 0) AS revenue
            FROM events e JOIN ads a ON e.ad_id = a.ad_id WHERE a.campaign_id = ?
        """
        return self._select(sql, [campaign_id])[0]

    def append_events(self, rows: list[dict[str, Any]]) -> int:
        """Insert served-ad events (``EVENT_ARROW_SCHEMA`` rows) not stored yet; returns how many were new."""
        batch = pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA)

        def work(con: duckdb.DuckDBPyConnection) -> int:
            con.register("served_events", batch)
            done = con.execute("""
                INSERT INTO events BY NAME
                SELECT s.*, 'serve' AS source_file FROM served_events s
                ANTI JOIN (SELECT event_id FROM events WHERE source_file = 'serve') e ON e.event_id = s.event_id""").fetchone()
            return int(done[0]) if done else 0

        return self._run(work, write=True)

    def _select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        def work(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cursor = con.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [{n: _from_db(n, v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]

        return self._run(work)


def _to_db(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and value is not None:
        return json.dumps(value, ensure_ascii=False)
    return value.value if hasattr(value, "value") else value


def _from_db(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value
