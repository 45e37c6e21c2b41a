"""Fixtures of the understand room: a loaded USE encoder (session) and a small filled store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from understand_helpers import events_frame, fill_store, products_frame, users_frame

from adpilot.store import Store
from adpilot.understand.encoders import USEEncoder


@pytest.fixture(scope="session")
def use_encoder() -> USEEncoder:
    return USEEncoder(threads=1)


@pytest.fixture()
def small_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "s.duckdb")
    fill_store(store, products_frame(), events_frame(), users_frame())
    yield store
    store.close()
