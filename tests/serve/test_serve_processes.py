"""Two real uvicorn server processes sharing one Redis and one store: started together (both build their snapshot
from the store at once), budgets and frequency caps hold across them, and the events both accept reach the store
exactly once; a snapshot refresh asked of one reaches the other."""

from __future__ import annotations

import calendar
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


def _launch(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "adpilot.serve.main:app_from_env", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
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
        # other tests of this worker may have served from the shared fixture's store before the copy
        already = con.execute("SELECT count(*) FROM events WHERE source_file = 'serve'").fetchall()[0][0]
    users = pq.read_table(home / "world" / "users.parquet", columns=["user_id", "geo"]).slice(0, 80).to_pylist()
    noon = time.strftime("%Y-%m-%dT12:00:00Z", time.gmtime())
    seen_at = calendar.timegm(time.strptime(noon, "%Y-%m-%dT%H:%M:%SZ")) + 60  # the impression, a minute later
    with redis_server(tmp_path) as url:
        env = {**os.environ, "ADPILOT_MODE": "test", "ADPILOT_STORE_PATH": str(store), "ADPILOT_ENCODER": "use",
               "ADPILOT_SCORER_PATH": str(settings.scorer_path), "ADPILOT_REDIS_URL": url,
               "ADPILOT_SECRET": settings.secret, "ADPILOT_ADMIN_API_KEY": settings.admin_api_key}
        ports = [free_port(), free_port()]
        logs = [tmp_path / f"server{i}.log" for i in range(2)]
        procs = [_launch(env, port, log) for port, log in zip(ports, logs, strict=True)]  # at once, on one store
        try:
            for proc, port, log in zip(procs, ports, logs, strict=True):
                _wait_healthy(proc, port, log)

            def ask(i: int) -> tuple[str, list[dict]]:
                port = ports[i % 2]
                user = users[i % len(users)]
                body = {"request_id": f"mp-{i}", "user_id": user["user_id"], "geo": user["geo"], "device": "mobile",
                        "slot": "feed", "ts": noon}
                done = httpx.post(f"http://127.0.0.1:{port}/v1/decide", json=body, timeout=30)
                assert done.status_code == 200, done.text
                reasons.append(done.json()["no_fill_reason"])
                return body["user_id"], done.json()["ads"]

            def impression(i_ad: tuple[int, dict]) -> int:
                i, ad = i_ad  # each token posted to both servers: the second one must refuse it
                answers = [httpx.post(f"http://127.0.0.1:{ports[(i + k) % 2]}/v1/events", timeout=30,
                                      json={"token": ad["token"], "type": "impression", "ts": seen_at}) for k in (0, 1)]
                return sum(a.status_code == 200 and a.json()["accepted"] for a in answers)

            reasons: list[str | None] = []
            with ThreadPoolExecutor(8) as pool:
                placed = [(user, ad) for user, ads in pool.map(ask, range(600)) for ad in ads]
                accepted = sum(pool.map(impression, enumerate(ad for _, ad in placed)))
            before = httpx.get(f"http://127.0.0.1:{ports[1]}/healthz", timeout=10).json()["built_at"]
            refreshed = httpx.post(f"http://127.0.0.1:{ports[0]}/v1/admin/refresh", timeout=120,
                                   headers={"X-API-Key": settings.admin_api_key})
            assert refreshed.status_code == 200 and refreshed.json()["workers_notified"] == 1, refreshed.text
            deadline = time.time() + 120
            while httpx.get(f"http://127.0.0.1:{ports[1]}/healthz", timeout=10).json()["built_at"] == before:
                assert time.time() < deadline, "the other server never rebuilt its snapshot"
                time.sleep(0.5)
        finally:
            for proc in procs:
                proc.terminate()  # lifespan shutdown: both spools write what they hold, taking turns on the file
            for proc in procs:
                proc.wait(timeout=60)
        assert placed, f"the servers placed no ad at all: {set(reasons)}"
        assert accepted == len(placed)
        with duckdb.connect(str(store), read_only=True) as con:
            stored = con.execute("SELECT count(*) FROM events WHERE source_file = 'serve'").fetchone()[0]
        assert stored - already == accepted, "events accepted by the two servers did not all reach the store exactly once"
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


@pytest.mark.slow
def test_serve_cli_runs_several_workers_on_one_store(live_store: tuple[Path, Settings], tmp_path: Path) -> None:
    """``adpilot serve --workers 2``: both workers build their snapshot from the same store file at once and
    answer on one port; without Redis the command refuses to start."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    _, settings = live_store
    store = tmp_path / "cli.duckdb"
    shutil.copy(settings.resolved_store_path, store)
    env = {**os.environ, "ADPILOT_MODE": "test", "ADPILOT_STORE_PATH": str(store), "ADPILOT_ENCODER": "use",
           "ADPILOT_SCORER_PATH": str(settings.scorer_path), "ADPILOT_SECRET": settings.secret}
    env.pop("ADPILOT_REDIS_URL", None)
    adpilot = [sys.executable, "-m", "adpilot.cli", "serve", "--workers", "2"]
    refused = subprocess.run(adpilot, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "ADPILOT_REDIS_URL" in refused.stderr, refused.stderr
    port, log = free_port(), tmp_path / "cli.log"
    with redis_server(tmp_path, unix_socket=True) as url:  # a co-located Redis, over its socket file
        proc = subprocess.Popen([*adpilot, "--port", str(port)], env={**env, "ADPILOT_REDIS_URL": url},
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            pids: set[int] = set()
            deadline = time.time() + 180
            while len(pids) < 2:  # a fresh connection reaches either worker
                assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
                try:
                    pids.add(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["pid"])
                except httpx.HTTPError:
                    time.sleep(0.3)
            body = {"request_id": "cli-1", "slot": "feed", "device": "mobile"}
            assert httpx.post(f"http://127.0.0.1:{port}/v1/decide", json=body, timeout=30).status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        assert "Traceback" not in log.read_text(), log.read_text()[-2000:]
