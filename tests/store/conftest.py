"""Fixtures of the store tests: a fresh store, test settings and a small-batch ingest policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import NOW

from adpilot.config import Settings
from adpilot.store import Store
from adpilot.store.ingest import IngestPolicy


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store.duckdb") as db:
        yield db


@pytest.fixture
def settings() -> Settings:
    return Settings(mode="test", secret="a-test-secret-of-some-length")


@pytest.fixture
def policy() -> IngestPolicy:
    return IngestPolicy(now=NOW, batch_rows=1000, block_bytes=64 << 10)
