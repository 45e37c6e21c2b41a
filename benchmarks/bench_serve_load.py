"""Load on the HTTP API with a real load generator (wrk) against uvicorn on loopback, at rising concurrency.

Builds a store with ``--ads`` ads and ``--profiles`` user profiles straight from random frames (unit vectors of
the e5 dimension, 384; no encoder runs: requests carry user ids and product pages, never free text), starts the
server as an operator does (``adpilot serve --workers N``) and a bare FastAPI endpoint that does nothing under
uvicorn (the ceiling of this machine, measured in the same run), and drives ``/v1/decide``, ``/openrtb/2.6/bid`` and the bare
endpoint with wrk at each concurrency in ``--connections``, then once at ``--overload`` connections (paced at
``--overload-rate``). Every request id is unique (the engine refuses a replayed id). ``decided/s`` counts the
answers that were not shed at the door; ``CPU ms/req`` is the server processes' CPU time (user + system, all
workers) per request answered, shed ones included — steadier than throughput on a shared machine; for the overload phase, ``answered p99`` is the server's own latency
histogram with the shed requests taken out (an upper bound at the histogram's bucket resolution: the shed answers
are assumed to be the fastest); with several workers, ``% by worker (conns)`` is the share of the phase's
requests each worker answered and, in brackets, the connections each held mid-phase (how the kernel dealt out
wrk's connections), both most first. With ``--baseline-src OLD/src`` (e.g. from ``git archive``), a server running that
source is started beside today's and every decide/OpenRTB phase runs against both in turn: before vs after in one
run, under the same machine load. Several workers share one redis-server on this host, reached over its unix
socket as a co-located Redis should be (``--redis-tcp``: over loopback TCP). After the load, a reconciliation phase serves ads, posts
impression and click events (with replays), stops the server and checks that events accepted, the metrics, the
shared counters' spend and the rows written to the store agree exactly.

Run: ``.venv/bin/python benchmarks/bench_serve_load.py [--ads 100000 --profiles 1000000 --duration 8]
[--baseline-src OLD/src]``
(needs ``wrk``: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pyarrow as pa
from fastapi import FastAPI

from adpilot.serve.cli import HEALTHCHECK_S

DIM = 384  # the e5 encoder's dimension: the server loads e5 only to match the store's vectors
SECRET = "bench-secret-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789"

LUA = r"""
local bodies, n, counter, thread_id = {}, 0, 0, 0
local created, threads = 0, {}
shed, nobid, client_errors, server_errors = 0, 0, 0, 0  -- globals: done() reads them with thread:get
local pace_ms = PACE_MS
function setup(thread)
  created = created + 1
  thread:set("thread_id", created)
  table.insert(threads, thread)
end
function init(args)
  for line in io.lines(args[1]) do n = n + 1; bodies[n] = line end
  math.randomseed(os.time() * 100 + thread_id)
  counter = math.random(n)  -- each thread and phase starts elsewhere in the lines, not on pages just asked for
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local body = bodies[(counter % n) + 1]:gsub("RID", thread_id .. "-" .. counter .. "-" .. SALT)
  return wrk.format("POST", nil, nil, body)
end
if pace_ms > 0 then
  function delay()  -- think time per connection, jittered so that connections do not move in lockstep
    return math.random(math.floor(pace_ms / 2), math.floor(pace_ms * 3 / 2))
  end
end
function response(status, headers, body)
  if headers["x-adpilot-shed"] then shed = shed + 1
  elseif status == 204 then nobid = nobid + 1
  elseif status >= 500 then server_errors = server_errors + 1
  elseif status >= 400 then client_errors = client_errors + 1 end
end
function done(summary, latency, requests)
  local t = {0, 0, 0, 0}
  for _, thread in ipairs(threads) do
    t[1] = t[1] + thread:get("shed"); t[2] = t[2] + thread:get("nobid")
    t[3] = t[3] + thread:get("client_errors"); t[4] = t[4] + thread:get("server_errors")
  end
  io.write(string.format("COUNTS shed=%d nobid=%d c4xx=%d s5xx=%d\n", t[1], t[2], t[3], t[4]))
end
"""


def bare_app() -> FastAPI:
    """The ceiling: a FastAPI app whose one endpoint does nothing (sync, like the decision routes)."""
    app = FastAPI()

    @app.post("/bare")
    def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/healthz")
    def healthz() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _vectors(ids: list[str], vectors: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM).cast(pa.list_(pa.float32()))


def build_store(path: Path, n_ads: int, n_profiles: int, seed: int) -> None:
    """Campaigns (20 ads each), ads, one creative per ad, product vectors and profiles, as DuckDB tables."""
    from adpilot.store import Store
    from adpilot.store.privacy import pseudonymise

    rng = np.random.default_rng(seed)
    with Store(str(path)):
        pass
    n_camp = max(1, n_ads // 20)
    n_adv = max(1, n_camp // 5)
    camp_of_ad = np.arange(n_ads) // 20
    tables = {
        "advertisers": pa.table({"advertiser_id": [f"adv{i}" for i in range(n_adv)],
                                 "name": [f"advertiser {i}" for i in range(n_adv)],
                                 "domain": [f"adv{i}.example" for i in range(n_adv)], "status": ["active"] * n_adv}),
        "campaigns": pa.table({
            "campaign_id": [f"c{i}" for i in range(n_camp)], "advertiser_id": [f"adv{i % n_adv}" for i in range(n_camp)],
            "name": [f"campaign {i}" for i in range(n_camp)], "status": ["active"] * n_camp,
            "total_budget": np.full(n_camp, 1e6), "daily_budget": np.full(n_camp, 1e5),
            "timezone": ["Asia/Shanghai"] * n_camp, "bid_strategy": ["manual_cpc"] * n_camp,
            "max_cpc": rng.uniform(0.2, 2.0, n_camp), "targeting": ["{}"] * n_camp}),
        "ads": pa.table({"ad_id": [f"a{i}" for i in range(n_ads)], "campaign_id": [f"c{c}" for c in camp_of_ad],
                         "product_id": [f"p{i}" for i in range(n_ads)], "status": ["active"] * n_ads}),
        "creatives": pa.table({"creative_id": [f"cr{i}" for i in range(n_ads)], "ad_id": [f"a{i}" for i in range(n_ads)],
                               "text": [f"好物推荐 {i}" for i in range(n_ads)], "language": ["zh"] * n_ads,
                               "source": ["template"] * n_ads, "status": ["active"] * n_ads,
                               "scores": ["{}"] * n_ads}),
    }
    with duckdb.connect(str(path)) as con:
        for name, table in tables.items():
            con.register("frame", table)
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame")
            con.unregister("frame")
        con.execute("CREATE TABLE IF NOT EXISTS product_vectors (product_id VARCHAR, encoder VARCHAR, vector FLOAT[])")
        con.execute("CREATE TABLE IF NOT EXISTS profiles (user_id VARCHAR PRIMARY KEY, interest_vector FLOAT[], "
                    "segment_id INTEGER, recent_items VARCHAR[], purchased_items VARCHAR[])")
        chunk = 100_000
        for start in range(0, n_ads, chunk):
            ids = [f"p{i}" for i in range(start, min(n_ads, start + chunk))]
            con.register("frame", pa.table({"product_id": ids, "encoder": ["e5"] * len(ids),
                                            "vector": _vectors(ids, _unit(rng, len(ids)))}))
            con.execute("INSERT INTO product_vectors SELECT * FROM frame")
            con.unregister("frame")
        for start in range(0, n_profiles, chunk):
            raw = range(start, min(n_profiles, start + chunk))
            ids = [pseudonymise(f"user{i}", SECRET) for i in raw]
            recent = [[f"p{j}" for j in rng.integers(0, n_ads, 3)] for _ in ids]
            con.register("frame", pa.table({"user_id": ids, "interest_vector": _vectors(ids, _unit(rng, len(ids))),
                                            "segment_id": rng.integers(0, 50, len(ids)).astype(np.int32),
                                            "recent_items": recent, "purchased_items": [[] for _ in ids]}))
            con.execute("INSERT INTO profiles BY NAME SELECT * FROM frame")
            con.unregister("frame")


def fit_scorer(path: Path, seed: int) -> None:
    """A similarity scorer fitted on simulated clicks (the doctest's recipe): real model, synthetic labels."""
    from adpilot.deliver.scorer import SimilarityScorer

    rng = np.random.default_rng(seed)
    sim = rng.uniform(-0.2, 0.6, 20_000)
    clicks = rng.random(20_000) < 1 / (1 + np.exp(-(-4 + 3 * sim)))
    SimilarityScorer().fit(sim, np.zeros(20_000), np.full(20_000, np.nan), clicks).save(path)


def write_bodies(path: Path, kind: str, n_ads: int, n_profiles: int, seed: int, n: int) -> None:
    """One JSON body per line; ``RID`` is replaced per request by the Lua script. Half the requests come from
    known users, half are anonymous on a product page. Pages are drawn uniformly from every ad's product: with
    ``n`` at least the requests a server answers, few pages repeat, so the engine's per-page neighbour cache is
    measured at a pessimistic hit rate (5,000 replayed lines made nearly every page a hit)."""
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        user = f"user{rng.integers(0, n_profiles)}" if i % 2 == 0 else None
        page = f"p{rng.integers(0, n_ads)}"
        if kind == "decide":
            body = {"request_id": "RID", "slot": "feed", "device": "mobile", "page": page}
            if user:
                body["user_id"] = user
        else:
            body = {"id": "RID", "tmax": 100, "imp": [{"id": "1", "tagid": "feed", "banner": {"w": 300, "h": 250}}],
                    "site": {"page": page}, "device": {"devicetype": 4}}
            if user:
                body["user"] = {"id": user}
        lines.append(json.dumps(body, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ADPILOT_SERVE = ["-m", "adpilot.cli", "serve"]  # `adpilot serve`, of the source on PYTHONPATH when set


def start(args: list[str], env: dict[str, str], port: int, log: Path, workers: int,
          timeout_s: float = 900) -> subprocess.Popen:
    """``args`` (:data:`ADPILOT_SERVE`, or uvicorn's for the bare app) with ``workers`` processes on ``port``;
    returns once every worker answers ``/healthz``."""
    command = ([*args, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)] if args == ADPILOT_SERVE
               else ["-m", "uvicorn", *args, "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
                     "--log-level", "warning", "--no-access-log", "--timeout-worker-healthcheck", str(HEALTHCHECK_S)])
    proc = subprocess.Popen([sys.executable, *command], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            by_worker(f"http://127.0.0.1:{port}", "/healthz", workers, tries=50)
            return proc
        except (httpx.HTTPError, RuntimeError, ValueError):
            time.sleep(0.5)
    stop(proc)
    raise RuntimeError("server did not start in time")


def stop(proc: subprocess.Popen) -> None:
    """SIGINT, as an operator would: the lifespan shutdown lets each worker's event spool write what is left."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(url: str, bodies: Path, connections: int, duration: int, rate: float = 0.0) -> dict[str, float]:
    """Throughput, p50/p99 (ms), shed answers, no-bids and errors of one wrk run (1 thread: the other core is the
    server's). ``rate`` > 0 paces each connection with a think time of ``connections / rate`` seconds."""
    pace_ms = round(connections * 1000 / rate) if rate > 0 else 0
    script = bodies.with_name(f"run_{time.monotonic_ns()}.lua")
    script.write_text(LUA.replace("SALT", f'"{time.monotonic_ns()}"').replace("PACE_MS", str(pace_ms)))
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "2s", "--latency",
                              "-s", str(script), url, "--", str(bodies)], capture_output=True, text=True, check=True)
    finally:
        script.unlink()
    text = out.stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    counts = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text.split("COUNTS", 1)[1])}
    return {"rps": rps, "requests": total, "decided": rps * (1 - counts["shed"] / max(total, 1)), "p50": ms("50"), "p99": ms("99"),
            **counts,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0}


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants (uvicorn's workers)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(int(c) for c in children)
    return total


def by_worker(base: str, path: str, n_workers: int, tries: int = 400) -> dict[int, str]:
    """``path``'s answer from each of the ``n_workers`` processes behind one port: every worker answers for
    itself (its pid is in ``/healthz`` and ``/metrics``), and a fresh connection lands on any of them."""
    found: dict[int, str] = {}
    for _ in range(tries):
        with httpx.Client(base_url=base, timeout=10) as client:
            text = client.get(path).text
        pid = int(json.loads(text)["pid"]) if path == "/healthz" else int(metric_value(text, "adpilot_process_pid"))
        found.setdefault(pid, text)
        if len(found) == n_workers:
            return found
    raise RuntimeError(f"reached {len(found)} of {n_workers} workers on {path} in {tries} connections")


def route_histogram(texts: list[str], route: str) -> tuple[list[float], list[float], float]:
    """(bucket bounds in s, cumulative counts summed over workers, shed count) of ``route`` from ``/metrics``."""
    counts: dict[float, float] = {}
    for text in texts:
        pattern = rf'^adpilot_request_seconds_bucket{{route="{re.escape(route)}",le="([^"]+)"}} (\S+)$'
        for le, value in re.findall(pattern, text, re.M):
            counts[float(le)] = counts.get(float(le), 0.0) + float(value)
    bounds = sorted(counts)
    shed = sum(metric_value(t, f'adpilot_shed_total{{route="{route}"}}') for t in texts)
    return bounds, [counts[b] for b in bounds], shed


def answered_p99_ms(before: tuple[list[float], list[float], float],
                    after: tuple[list[float], list[float], float]) -> float:
    """Upper bound of the p99 latency (ms) of the requests answered (not shed) between two histogram reads: the
    shed ones are removed from the fastest buckets; the p99 is the bound of the bucket it falls in."""
    bounds, high, shed_after = after
    low = before[1] if before[0] == bounds else [0.0] * len(bounds)
    cumulative = [h - lo for h, lo in zip(high, low, strict=True)]
    shed = shed_after - before[2]
    answered = [max(0.0, c - shed) for c in cumulative]
    if not answered or answered[-1] <= 0:
        return float("nan")
    target = 0.99 * answered[-1]
    return 1000 * next(b for b, c in zip(bounds, answered, strict=True) if c >= target)


def worker_counts(host: str, path: str, n_workers: int) -> list[float]:
    """Requests on ``path`` each worker has answered so far (its ``/metrics``, all statuses), by pid."""
    texts = by_worker(host, "/metrics", n_workers)
    pattern = rf'^adpilot_requests_total{{route="{re.escape(path)}",status="[^"]*"}} (\S+)$'
    return [sum(float(v) for v in re.findall(pattern, texts[pid], re.M)) for pid in sorted(texts)]


def connections_by_process(port: int) -> list[int]:
    """Established connections to ``port`` held by each server process (``ss``), most first."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True,
                         text=True, check=False).stdout
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


def record_connections(port: int, into: list[int]) -> None:
    into.extend(connections_by_process(port))


def metric_sum(text: str, name: str) -> float:
    """Sum of every series of metric ``name`` in one worker's ``/metrics`` text."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def metric_value(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def reconcile(base: str, n_workers: int, n_requests: int, n_profiles: int, seed: int) -> dict[str, float]:
    """Serve ads, post impressions and clicks with replays, 8 clients at a time on fresh connections (so that
    with several workers an ad's events mostly reach another worker than the one that placed it); returns what
    each side counted: the clients, the workers' metrics (summed), the shared counters."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(seed)
    run = time.time_ns()  # request ids new to the store, which may hold a previous run's events
    users = [f"user{u}" for u in rng.integers(0, n_profiles, n_requests)]

    def post(path_body: tuple[str, dict]) -> dict:
        with httpx.Client(base_url=base, timeout=30) as client:  # a fresh connection: any worker
            return client.post(path_body[0], json=path_body[1]).json()

    def spend() -> float:  # the campaigns' spend as the shared counters hold it (any worker reads the same)
        return metric_sum(httpx.get(f"{base}/metrics", timeout=30).text, "adpilot_campaign_spend")

    with ThreadPoolExecutor(8) as pool:
        asks = [("/v1/decide", {"request_id": f"rec-{run}-{i}", "slot": "feed", "device": "mobile", "user_id": u})
                for i, u in enumerate(users)]
        ads = [ad for done in pool.map(post, asks) for ad in done["ads"]]
        spend_before = spend()
        events = [{"token": a["token"], "type": t} for a in ads for t in ("impression", "click")]
        replays = [events[int(j)] for j in rng.integers(0, len(events), len(events) // 10)]
        posted = events + replays
        answers = list(pool.map(post, [("/v1/events", {"events": posted[i:i + 50]})
                                       for i in range(0, len(posted), 50)]))
    accepted = sum(a.get("accepted", 0) for a in answers)
    rejected = sum(len(a.get("detail", a)["rejected"]) for a in answers)
    metrics = by_worker(base, "/metrics", n_workers).values()
    return {"placed": len(ads), "posted": len(posted), "accepted": accepted, "rejected": rejected,
            "metric_accepted": sum(metric_value(t, 'adpilot_events_total{type="impression",outcome="accepted"}')
                                   + metric_value(t, 'adpilot_events_total{type="click",outcome="accepted"}')
                                   for t in metrics),
            "charged": float(sum(a["price"] for a in ads)), "counter_spend": spend() - spend_before}


def served_events(store: Path) -> tuple[int, float]:
    """(rows, summed click price) of the events the server wrote to the store."""
    with duckdb.connect(str(store), read_only=True) as con:
        rows, spend = con.execute("SELECT count(*), coalesce(sum(price), 0) FROM events WHERE source_file = 'serve'"
                                  ).fetchone()  # type: ignore[misc]
    return int(rows), float(spend)


def measure(args: argparse.Namespace, work: Path, store: Path, env: dict[str, str], bodies: dict[str, Path],
            n_workers: int) -> dict[str, float]:
    """Every phase against ``n_workers`` server processes (and as many bare ones, and as many running
    ``--baseline-src`` when given); returns the reconciliation."""
    from contextlib import ExitStack

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from redis_support import redis_server

    with ExitStack() as stack:
        env = dict(env)
        if n_workers > 1:  # several workers share budgets and caps through a real redis-server
            env["ADPILOT_REDIS_URL"] = stack.enter_context(redis_server(work, unix_socket=not args.redis_tcp))
        rows_before, spend_before = served_events(store)
        port, bare_port, old_port = free_port(), free_port(), free_port()
        started = time.perf_counter()
        server = start(ADPILOT_SERVE, env, port, work / "server.log", n_workers)
        servers = [server]
        print(f"\n{n_workers} worker(s), counters {'in Redis' if n_workers > 1 else 'in process'}: every worker up "
              f"(snapshot built) in {time.perf_counter() - started:.1f}s; load average {os.getloadavg()[0]:.1f}")
        try:
            servers.append(start(["--factory", "bench_serve_load:bare_app", "--app-dir", str(Path(__file__).parent)],
                                 env, bare_port, work / "bare.log", n_workers))
            base = f"http://127.0.0.1:{port}"
            targets = {"bare": (f"http://127.0.0.1:{bare_port}", "/bare", bodies["decide"], servers[1].pid)}
            if args.baseline_src:  # the same store, its own Redis keys are shared: budgets are ample
                old_env = {**env, "PYTHONPATH": str(args.baseline_src.resolve())}
                servers.append(start(ADPILOT_SERVE, old_env, old_port, work / "baseline.log", n_workers))
            for name, path in (("decide", "/v1/decide"), ("openrtb", "/openrtb/2.6/bid")):
                targets[name] = (base, path, bodies[name], server.pid)
                if args.baseline_src:
                    targets[f"{name}@old"] = (f"http://127.0.0.1:{old_port}", path, bodies[name], servers[-1].pid)
            phases = [(int(c), 0.0) for c in args.connections.split(",")] + [(args.overload, args.overload_rate)]
            print(f"{'endpoint':<12}{'conns':>6}{'paced':>7}{'req/s':>8}{'decided/s':>10}{'/bare':>7}{'p50 ms':>8}"
                  f"{'p99 ms':>8}{'shed':>7}{'no-bid':>7}{'4xx':>5}{'5xx':>5}{'sock':>5}{'CPU ms/req':>11}{'answered p99':>14}"
                  f"{'% by worker (conns)':>20}")
            for conns, rate in phases:
                bare_rps = float("nan")
                overload = (conns, rate) == phases[-1]
                for name, (host, path, body_file, pid) in targets.items():
                    before = (route_histogram(list(by_worker(host, "/metrics", n_workers).values()), path)
                              if overload and name != "bare" else None)
                    spread = n_workers > 1 and name != "bare"
                    split_before = worker_counts(host, path, n_workers) if spread else []
                    held: list[int] = []  # connections per worker, sampled mid-phase
                    sampler = threading.Timer(args.duration / 2, record_connections,
                                              (int(host.rsplit(":", 1)[1]), held))
                    if spread:
                        sampler.start()
                    cpu_before = cpu_seconds(pid)
                    r = wrk(host + path, body_file, conns, args.duration, rate)
                    if spread:
                        sampler.join()
                    cpu_ms = 1000 * (cpu_seconds(pid) - cpu_before) / max(r["requests"], 1)
                    bare_rps = r["rps"] if name == "bare" else bare_rps
                    answered = ""
                    if before is not None:
                        after = route_histogram(list(by_worker(host, "/metrics", n_workers).values()), path)
                        answered = f"<= {answered_p99_ms(before, after):.0f} ms"
                    split = ""
                    if spread:  # how the connections fell among the workers
                        served = [a - b for a, b in zip(worker_counts(host, path, n_workers), split_before,
                                                        strict=True)]
                        split = "/".join(f"{100 * x / max(sum(served), 1):.0f}" for x in sorted(served, reverse=True))
                        split += " (" + "/".join(map(str, held)) + ")"
                    paced = f"{rate:.0f}" if rate else "-"
                    print(f"{name:<12}{conns:>6}{paced:>7}{r['rps']:>8.0f}{r['decided']:>10.0f}"
                          f"{r['rps'] / bare_rps:>7.2f}{r['p50']:>8.2f}{r['p99']:>8.2f}{r['shed']:>7}{r['nobid']:>7}"
                          f"{r['c4xx']:>5}{r['s5xx']:>5}{r['socket_errors']:>5}{cpu_ms:>11.3f}{answered:>14}{split:>20}",
                          flush=True)
                print(f"{'':<12}load average {os.getloadavg()[0]:.1f}")
            rec = reconcile(base, n_workers, 300, args.profiles, args.seed)
        finally:
            for proc in servers:
                stop(proc)
        rows, spend = served_events(store)
    rec.update(store_rows=rows - rows_before, store_click_spend=round(spend - spend_before, 6))
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ads", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure in turn, e.g. 1,2")
    parser.add_argument("--connections", default="1,4,8,16,32")
    parser.add_argument("--overload", type=int, default=128, help="connections of the paced overload phase")
    parser.add_argument("--overload-rate", type=float, default=3000.0,
                        help="requests/s offered in the overload phase (2x the 1,500/s goal); 0 = closed loop")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--max-inflight", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the store here (reused when present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bodies", type=int, default=100_000, help="distinct request lines wrk cycles through")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="an earlier checkout's src folder: its server runs beside today's, phase by phase")
    parser.add_argument("--redis-tcp", action="store_true",
                        help="reach Redis over loopback TCP instead of its unix socket (how a co-located Redis is "
                             "best reached: ~0.05 CPU ms less per decision)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="adpilot-load-"))
    work.mkdir(parents=True, exist_ok=True)
    store, scorer = work / f"load_{args.ads}_{args.profiles}.duckdb", work / "scorer.json"
    if not store.exists():
        started = time.perf_counter()
        build_store(store, args.ads, args.profiles, args.seed)
        print(f"built store: {args.ads:,} ads, {args.profiles:,} profiles in {time.perf_counter() - started:.1f}s")
    fit_scorer(scorer, args.seed)
    bodies = {k: work / f"{k}.jsonl" for k in ("decide", "openrtb")}
    for kind, path in bodies.items():
        write_bodies(path, kind, args.ads, args.profiles, args.seed, args.bodies)
    env = {**os.environ, "ADPILOT_MODE": "test", "ADPILOT_STORE_PATH": str(store), "ADPILOT_ENCODER": "e5",
           "ADPILOT_SCORER_PATH": str(scorer), "ADPILOT_SECRET": SECRET, "ADPILOT_ADMIN_API_KEY": ADMIN_KEY,
           "ADPILOT_SERVE_MAX_INFLIGHT": str(args.max_inflight)}
    env.pop("ADPILOT_REDIS_URL", None)
    for n_workers in [int(n) for n in args.workers.split(",")]:
        rec = measure(args, work, store, env, bodies, n_workers)
        print(f"reconciliation ({n_workers} worker(s)): events posted (with 10% replays) / accepted / in the "
              "workers' metrics / written to the store; click prices charged / committed in the counters / summed "
              "in the store")
        print(json.dumps(rec))
    print(f"\nreproduce: nice .venv/bin/python benchmarks/bench_serve_load.py --ads {args.ads} --profiles "
          f"{args.profiles} --workers {args.workers} --connections {args.connections} --overload {args.overload} "
          f"--overload-rate {args.overload_rate:.0f} --max-inflight {args.max_inflight} --duration {args.duration} --bodies {args.bodies}"
          + (f" --baseline-src {args.baseline_src}" if args.baseline_src else ""))


if __name__ == "__main__":
    main()
