"""Two real uvicorn server processes sharing one Redis: budgets and frequency caps hold across them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
import redis

from adpilot.config import Settings
from redis_support import free_port, redis_server

DAILY_BUDGET = 5.0


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "adpilot.serve.main:app_from_env", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_two_processes_share_budget_and_caps(live_store: tuple[Path, Settings], tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    home, settings = live_store
    store = tmp_path / "shared.duckdb"
    shutil.copy(settings.resolved_store_path, store)
    with duckdb.connect(str(store)) as con:  # every campaign: open audience, small daily budget, one ad a day
        con.execute("UPDATE campaigns SET daily_budget = ?, freq_cap_daily = 1, targeting = '{}'", [DAILY_BUDGET])
    users = pq.read_table(home / "world" / "users.parquet", columns=["user_id", "geo"]).slice(0, 80).to_pylist()
    with redis_server(tmp_path) as url:
        env = {**os.environ, "ADPILOT_MODE": "test", "ADPILOT_STORE_PATH": str(store), "ADPILOT_ENCODER": "use",
               "ADPILOT_SCORER_PATH": str(settings.scorer_path), "ADPILOT_REDIS_URL": url,
               "ADPILOT_SECRET": settings.secret}
        ports = [free_port(), free_port()]
        procs = []
        try:
            for i, port in enumerate(ports):
                procs.append(_start(env, port, tmp_path / f"server{i}.log"))

            def ask(i: int) -> tuple[str, list[dict]]:
                port = ports[i % 2]
                user = users[i % len(users)]
                body = {"request_id": f"mp-{i}", "user_id": user["user_id"], "geo": user["geo"], "device": "mobile",
                        "slot": "feed", "ts": time.strftime("%Y-%m-%dT12:00:00Z")}
                done = httpx.post(f"http://127.0.0.1:{port}/v1/decide", json=body, timeout=30)
                assert done.status_code == 200, done.text
                reasons.append(done.json()["no_fill_reason"])
                return body["user_id"], done.json()["ads"]

            reasons: list[str | None] = []
            with ThreadPoolExecutor(8) as pool:
                placed = [(user, ad) for user, ads in pool.map(ask, range(600)) for ad in ads]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=20)
        assert placed, f"the servers placed no ad at all: {set(reasons)}"
        per_campaign: dict[str, float] = {}
        per_user_campaign: dict[tuple[str, str], int] = {}
        for user, ad in placed:
            per_campaign[ad["campaign_id"]] = per_campaign.get(ad["campaign_id"], 0.0) + ad["price"]
            per_user_campaign[(user, ad["campaign_id"])] = per_user_campaign.get((user, ad["campaign_id"]), 0) + 1
        # reservations made by both processes never exceed the shared daily budget, nor the shared cap
        assert max(per_campaign.values()) <= DAILY_BUDGET + 1e-9
        assert max(per_user_campaign.values()) == 1
        client = redis.Redis.from_url(url)
        assert client.dbsize() > 0, "the servers did not keep their counters in Redis"
