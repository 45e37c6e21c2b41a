"""A small live store for the server tests: a synthetic world that is running now, ingested, with product
vectors from the real USE encoder, profiles, and a scorer fitted on its logged impressions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from adpilot.config import Settings
from adpilot.pipeline import DemoConfig, ingest_step, train_step, understand_step
from adpilot.serve.app import create_app
from adpilot.serve.main import vet_copy
from adpilot.serve.wiring import engine_factory
from adpilot.store import Store

ADMIN_KEY = "admin-key-for-tests-0123456789"


@pytest.fixture(scope="session")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    from adpilot.datasets.world import WorldConfig, write_world

    home = tmp_path_factory.mktemp("serve")
    start = (datetime.now(UTC) - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    write_world(home / "world", WorldConfig(n_users=400, n_events=20_000, n_days=10, seed=3, start=start))
    settings = Settings(mode="test", encoder="use", home=home, scorer_path=home / "models" / "scorer.json",
                        admin_api_key=ADMIN_KEY, secret="serve-test-secret-0123456789")
    config = DemoConfig(home=home, users=400, events=20_000, days=10, seed=3)
    with Store(settings.resolved_store_path) as store:
        ingest_step(config, store, settings)()
        understand_step(store, settings, config)()
        train_step(store, settings, settings.scorer_path)()  # type: ignore[arg-type]
    return home, settings


@pytest.fixture
def client(live_store: tuple[Path, Settings]) -> Iterator[TestClient]:
    _, settings = live_store
    app = create_app(settings, engine_factory(settings), vet_copy)
    with TestClient(app) as test_client:
        yield test_client
