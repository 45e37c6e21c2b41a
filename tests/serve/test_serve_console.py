"""The web console in real headless Chromium, against the app served by uvicorn on loopback."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from adpilot.config import Settings
from adpilot.serve.app import create_app
from adpilot.serve.main import vet_copy
from adpilot.serve.wiring import engine_factory
from redis_support import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def served(live_store: tuple[Path, Settings]) -> Iterator[tuple[str, TestClient]]:
    _, settings = live_store
    app = create_app(settings, engine_factory(settings), vet_copy)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}", TestClient(app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (virtual time lets the API calls finish)."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_console_lists_only_the_keys_campaigns(served: tuple[str, TestClient], tmp_path: Path) -> None:
    base, client = served
    admin = {"X-API-Key": client.app.state.settings.admin_api_key}  # type: ignore[attr-defined]
    keys = [client.post("/v1/advertisers", json={"name": n}, headers=admin).json()["api_key"] for n in ("ann", "ben")]
    for key, name in zip(keys, ("ann spring <b>sale</b>", "ben secret launch"), strict=True):
        made = client.post("/v1/campaigns", json={"name": name, "total_budget": 120, "daily_budget": 12.5},
                           headers={"X-API-Key": key})
        assert made.status_code == 201, made.text
    page = _dom(f"{base}/console#key={keys[0]}", tmp_path / "profile-ann")
    assert "ann spring &lt;b&gt;sale&lt;/b&gt;" in page  # the name is shown as text, not markup
    assert "12.50" in page and "120.00" in page and "0.00" in page
    assert "ben secret launch" not in page
    refused = _dom(f"{base}/console#key=ak_forged", tmp_path / "profile-eve")
    assert "invalid API key" in refused and "ann spring" not in refused
