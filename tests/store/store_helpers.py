"""Seeded event tables and the fixed clock of the store tests (imported by name: a conftest cannot be)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def make_events(rows: int, seed: int = 0, users: int = 50) -> pa.Table:
    """Seeded, valid, distinct events (one per second per row index) in the event Arrow schema's columns."""
    rng = np.random.default_rng(seed)
    types = np.array(["page_view", "search", "click", "add_to_cart", "purchase"])[rng.integers(0, 5, rows)]
    ts = np.datetime64("2026-03-01T00:00:00", "us").astype(np.int64) + np.arange(rows, dtype=np.int64) * 1_000_000
    return pa.table({
        "user_id": pa.array([f"user{u}" for u in rng.integers(0, users, rows)]),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "type": pa.array(types),
        "item_id": pa.array([f"item{i}" for i in rng.integers(0, 100, rows)]),
        "price": pa.array(np.round(rng.uniform(1, 500, rows), 2)),
        "query": pa.array(np.where(types == "search", "red shoes 13812345678", None), pa.string()),
    })
