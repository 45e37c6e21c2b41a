"""Latency of one decision, in-process on one core: 100k live ads, 1M user profiles, ~200 candidates scored.

    .venv/bin/python benchmarks/bench_deliver_decide.py [--ads 100000] [--users 1000000] [--requests 3000]
        [--baseline-src OLD/src/adpilot/deliver] [--redis-url redis://127.0.0.1:6379/0 [--baseline-redis-url URL]]
        [--budget-ttl SECONDS]

Prints p50/p99/mean latency of ``DecisionEngine.decide`` with the default IVF index (``--index``), and the same
requests through the same engine on an exact (flat) index as the peer measured in the same run. With ``--baseline-src``
(the ``deliver`` folder of an earlier checkout, e.g. ``git archive``), that version's decision path (engine, targeting,
auction, bandits, tokens, pacer, in-process counters, and its own ANN index over the same vectors; the snapshot
and scorer are today's) decides the same
requests interleaved with today's, request by request, so both see the same machine noise: before vs after in one
run. Each engine has its own counters and pacer and both get the same request ids, so their decisions must be
identical when a change is a pure speed-up: the run counts the requests decided differently, and prints both
engines' expected revenue and the two indexes' recall of the exact top 300. Wall-clock and
thread CPU time are both reported: on a shared, oversubscribed machine the wall clock includes time spent waiting
for a core, the CPU time does not. With ``--redis-url`` the engines keep their counters in that Redis (as several
server processes would; each under its own key prefix, the baseline with its own version's ``RedisCounters``) and
the run also reports round trips to Redis per decision (counted in redis-py, one per command or pipeline sent) and
the Redis server's commands and CPU per decision (``INFO commandstats``/``INFO cpu``: per engine when
``--baseline-redis-url`` names a second server, else the two engines' sum). The keys are not removed afterwards:
use a scratch server. Vectors are synthetic topic clusters
(no text model can encode 100k titles inside a benchmark's minute); interest words map to topic centres.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402

from adpilot.config import Settings  # noqa: E402
from adpilot.deliver.base import CandidateBatch  # noqa: E402
from adpilot.deliver.counters import RedisCounters  # noqa: E402
from adpilot.deliver.engine import DecisionEngine  # noqa: E402
from adpilot.deliver.retrieval import AdIndex  # noqa: E402
from adpilot.deliver.scorer import SimilarityScorer  # noqa: E402
from adpilot.deliver.snapshot import Snapshot  # noqa: E402
from adpilot.schema import AdRequest, Decision  # noqa: E402

WORDS = ["运动", "篮球", "跑步", "连衣裙", "口红", "手机", "绿茶", "母婴", "家电", "户外", "数码", "美妆"]


class TopicEncoder:
    """Maps a text to the unit centre of the topic its hash picks: enough to exercise the query path's cost."""

    name = "topics"

    def __init__(self, centres: np.ndarray) -> None:
        self.centres, self.dim = centres, centres.shape[1]

    def encode(self, texts, kind="query"):  # noqa: ANN001, ANN201
        return self.centres[[zlib.crc32(t.encode()) % len(self.centres) for t in texts]]


class CountingScorer:
    """The similarity scorer, counting how many candidates reach it."""

    def __init__(self, inner: SimilarityScorer) -> None:
        self.inner, self.calls, self.scored = inner, 0, 0

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        self.scored += len(batch.ad_ids)
        return self.inner.score(batch)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build(args: argparse.Namespace) -> tuple[Snapshot, CountingScorer]:
    rng = np.random.default_rng(args.seed)
    d, n_topics = args.dim, 500
    centres = unit(rng.normal(size=(n_topics, d)))
    ad_topic = rng.integers(0, n_topics, args.ads)
    product_vectors = unit(centres[ad_topic] + 0.08 * rng.normal(size=(args.ads, d)).astype(np.float32))
    pids = [f"p{i}" for i in range(args.ads)]
    n_camp = args.ads // 10
    geos = ["北京", "上海", "广州", "深圳", "杭州"]
    camp_rows = []
    for c in range(n_camp):
        t: dict = {}
        if c % 5 == 0:
            t["geo"] = list(rng.choice(geos, 2, replace=False))
        if c % 7 == 0:
            t["device"] = ["mobile"]
        if c % 11 == 0:
            t["segments"] = [str(rng.integers(0, 50))]
        if c % 13 == 0:
            t["interests"] = [WORDS[c % len(WORDS)]]
            t["interest_threshold"] = 0.5
        if c % 17 == 0:
            t["negative_keywords"] = ["二手"]
        camp_rows.append({"campaign_id": f"c{c}", "advertiser_id": f"adv{c % 500}", "name": f"c{c}",
                          "status": "active", "total_budget": 1e6, "daily_budget": 1e5,
                          "bid_strategy": ["manual_cpc", "target_cpa", "max_clicks"][c % 3],
                          "max_cpc": float(rng.uniform(0.2, 3.0)), "target_cpa": 30.0,
                          "freq_cap_daily": 5 if c % 4 == 0 else None, "targeting": t})
    campaigns = pd.DataFrame(camp_rows)
    ads = pd.DataFrame({"ad_id": [f"a{i}" for i in range(args.ads)],
                        "campaign_id": [f"c{i % n_camp}" for i in range(args.ads)], "product_id": pids,
                        "status": "active"})
    n_cr = 3 * args.ads
    creatives = pd.DataFrame({"creative_id": [f"cr{i}" for i in range(n_cr)],
                              "ad_id": [f"a{i // 3}" for i in range(n_cr)], "text": "copy", "status": "active"})
    print(f"building {args.users:,} profiles ...", flush=True)
    user_topic = rng.integers(0, n_topics, args.users)
    user_vectors = np.empty((args.users, d), dtype=np.float32)
    for s in range(0, args.users, 100_000):
        e = min(s + 100_000, args.users)
        user_vectors[s:e] = unit(centres[user_topic[s:e]] + 0.15 * rng.normal(size=(e - s, d)).astype(np.float32))
    n_bought = rng.integers(0, 4, args.users)
    offsets = np.concatenate([[0], np.cumsum(n_bought)]).astype(np.int32)
    bought = pa.array(np.asarray(pids, dtype=object)[rng.integers(0, args.ads, offsets[-1])], pa.string())
    profiles = pa.table({
        "user_id": pa.array([f"u{i}" for i in range(args.users)]),
        "interest_vector": pa.FixedSizeListArray.from_arrays(pa.array(user_vectors.reshape(-1)), d),
        "segment_id": pa.array(rng.integers(0, 50, args.users).astype(np.int32)),
        "purchased_items": pa.ListArray.from_arrays(pa.array(offsets), bought),
        "recent_items": pa.ListArray.from_arrays(pa.array(offsets), bought),
    })
    del user_vectors
    sims = rng.uniform(-0.2, 1, 20_000)
    clicks = rng.random(20_000) < 1 / (1 + np.exp(-(-4 + 3 * sims)))
    half = np.arange(20_000) % 2 == 0
    nan = np.full(20_000, np.nan)
    scorer = CountingScorer(SimilarityScorer().fit(np.where(half, sims, 0), np.where(half, 0, sims), nan, clicks,
                                                   nan, clicks & (rng.random(20_000) < 0.1)))
    print(f"building the snapshot ({args.index} index) ...", flush=True)
    t0 = time.perf_counter()
    snapshot = Snapshot.from_frames(campaigns=campaigns, ads=ads, creatives=creatives,
                                    product_vectors=(pids, product_vectors), profiles=profiles, scorer=scorer,
                                    encoder=TopicEncoder(centres), index_kind=args.index,
                                    user_vector_dtype=np.float16)
    print(f"snapshot built in {time.perf_counter() - t0:.1f} s", flush=True)
    return snapshot, scorer


def requests(args: argparse.Namespace) -> list[AdRequest]:
    rng = np.random.default_rng(args.seed + 1)
    ts = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    out = []
    for i in range(args.requests):
        kind = rng.random()
        kw: dict = {"geo": str(rng.choice(["北京", "上海", "成都"])), "device": str(rng.choice(["mobile", "desktop"]))}
        if kind < 0.7:
            kw["user_id"] = f"u{rng.integers(0, args.users)}"
        elif kind < 0.8:
            kw["query"] = f"{rng.choice(WORDS)} {rng.integers(0, 50)}"
        elif kind < 0.9:
            kw["user_id"] = f"unknown{i}"
        else:
            kw["page"] = f"p{rng.integers(0, args.ads)}"
        out.append(AdRequest(request_id=f"r{i}", slot="feed", ts=ts, **kw))
    return out


def measure(engine: DecisionEngine, reqs: list[AdRequest], tag: str) -> np.ndarray:
    for r in reqs[:200]:  # warm-up on distinct ids
        engine.decide(r.model_copy(update={"request_id": f"warm-{tag}-{r.request_id}"}))
    times, cpu = np.empty(len(reqs)), np.empty(len(reqs))
    filled = 0
    for i, r in enumerate(reqs):
        r = r.model_copy(update={"request_id": f"{tag}-{r.request_id}"})
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        decision = engine.decide(r)
        times[i], cpu[i] = (time.perf_counter_ns() - t0) / 1e6, (time.thread_time_ns() - c0) / 1e6
        filled += bool(decision.ads)
    for name, t in (("wall", times), ("cpu", cpu)):
        print(f"{tag:>5} {name:>4}: p50 {np.percentile(t, 50):.3f} ms  p99 {np.percentile(t, 99):.3f} ms  "
              f"mean {t.mean():.3f} ms", flush=True)
    print(f"{tag:>5} fill rate {filled / len(reqs):.1%}")
    return cpu


BASELINE_MODULES = ("tokens", "bandits", "auction", "retrieval", "targeting", "pacing", "counters",
                    "engine")  # import order


def baseline_modules(src: Path) -> dict[str, ModuleType]:
    """Another version's deliver sources by module name (``engine``, ``counters``, ...): its decision-path modules
    are loaded under new names (importing each other), everything else stays today's."""
    loaded: dict[str, object] = {}
    for name in BASELINE_MODULES:
        text = (src / f"{name}.py").read_text()
        for other in loaded:
            text = text.replace(f"adpilot.deliver.{other} ", f"baseline_deliver_{other} ")
        spec = importlib.util.spec_from_loader(f"baseline_deliver_{name}", loader=None)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[module.__name__] = module
        exec(compile(text, str(src / f"{name}.py"), "exec"), module.__dict__)  # noqa: S102
        loaded[name] = module
    return loaded  # type: ignore[return-value]


class RoundTrips:
    """Requests sent to Redis by this process (a command, or a whole pipeline, is one), counted in redis-py and in
    the decision path's lean script connection."""

    def __init__(self) -> None:
        from redis.connection import AbstractConnection

        from adpilot.deliver.resp import ScriptConnection

        self.count = 0
        send = AbstractConnection.send_packed_command
        call = ScriptConnection.call

        def counted(connection, command, check_health=True):  # noqa: ANN001, ANN202
            self.count += 1
            return send(connection, command, check_health)

        def counted_call(connection, *parts):  # noqa: ANN001, ANN002, ANN202
            self.count += 1
            return call(connection, *parts)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
        ScriptConnection.call = counted_call  # type: ignore[method-assign]


def redis_usage(url: str) -> tuple[dict[str, int], float]:
    """(calls per command, CPU seconds) the Redis server at ``url`` has used so far (the INFO calls excluded)."""
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def print_redis_usage(label: str, url: str, before: tuple[dict[str, int], float], decisions: int) -> None:
    calls, cpu = redis_usage(url)
    delta = {k: v - before[0].get(k, 0) for k, v in calls.items() if v > before[0].get(k, 0)}
    per = ", ".join(f"{k} {v / decisions:.2f}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1]))
    print(f"redis server ({label}): commands run per decision, script-internal ones included, "
          f"{sum(delta.values()) / decisions:.2f} ({per}); "
          f"server CPU per decision {1000 * (cpu - before[1]) / decisions:.3f} ms")


def same_decision(a: Decision, b: Decision) -> bool:
    """Equal placed ads (ids, creative, price, scores, token) and no-fill reason."""
    return a.no_fill_reason == b.no_fill_reason and [x.model_dump() for x in a.ads] == [x.model_dump() for x in b.ads]


def interleaved(engines: dict[str, DecisionEngine], reqs: list[AdRequest], trips: RoundTrips | None = None,
                servers: dict[str, str] | None = None) -> None:
    """Each request decided by every engine in turn (order alternating), with the same request id (each engine
    has its own counters and pacer); prints the timings and how many decisions differ, and with ``trips`` the
    Redis round trips per decision and the usage of the Redis ``servers`` (label -> URL)."""
    names = list(engines)
    for r in reqs[:200]:
        for n in names:
            engines[n].decide(r.model_copy(update={"request_id": f"warm-{r.request_id}"}))
    times = {n: (np.empty(len(reqs)), np.empty(len(reqs))) for n in names}
    sent = dict.fromkeys(names, 0)
    usage = {label: redis_usage(url) for label, url in (servers or {}).items()}
    load = os.getloadavg()[0]
    differ: list[str] = []
    revenue = dict.fromkeys(names, 0.0)  # expected, per click billing: sum of pCTR x price over placed ads
    for i, r in enumerate(reqs):
        req = r.model_copy(update={"request_id": f"pair-{r.request_id}"})
        decided = {}
        for n in names if i % 2 == 0 else names[::-1]:
            k0 = trips.count if trips is not None else 0
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            decided[n] = engines[n].decide(req)
            times[n][0][i], times[n][1][i] = (time.perf_counter_ns() - t0) / 1e6, (time.thread_time_ns() - c0) / 1e6
            sent[n] += trips.count - k0 if trips is not None else 0
        if not same_decision(*decided.values()):
            differ.append(f"{req.request_id} (no-fill: " + " / ".join(str(d.no_fill_reason) for d in decided.values())
                          + ")")
        for n, d in decided.items():
            revenue[n] += sum(ad.pctr * ad.price for ad in d.ads)
    print(f"machine load average (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after the interleaved run")
    print(f"decisions differing between {' and '.join(names)}: {len(differ)} of {len(reqs)}"
          + (f" (first: {differ[:3]})" if differ else ""))
    print("expected revenue (sum of pCTR x price per click): "
          + ", ".join(f"{n} {revenue[n]:.4f}" for n in names)
          + f"; ratio {names[1]} / {names[0]} {revenue[names[1]] / max(revenue[names[0]], 1e-12):.5f}")
    if trips is not None:
        print("redis round trips per decision: " + ", ".join(f"{n} {sent[n] / len(reqs):.2f}" for n in names))
    for label, before in usage.items():
        decisions = len(reqs) * (len(names) if label == "both engines" else 1)
        print_redis_usage(label, (servers or {})[label], before, decisions)
    for n in names:
        for kind, t in zip(("wall", "cpu"), times[n], strict=True):
            print(f"{n:>9} {kind:>4}: p50 {np.percentile(t, 50):.3f} ms  p99 {np.percentile(t, 99):.3f} ms  "
                  f"mean {t.mean():.3f} ms", flush=True)
    for kind, k in (("wall", 0), ("cpu", 1)):
        ratio = [np.percentile(times[names[0]][k], q) / np.percentile(times[names[1]][k], q) for q in (50, 99)]
        print(f"{kind} ratio {names[0]} / {names[1]}: p50 {ratio[0]:.2f}x  p99 {ratio[1]:.2f}x")


def retrieval_overlap(snapshot: Snapshot, indexes: dict[str, object], reqs: list[AdRequest], k: int = 300,
                      sample: int = 500) -> None:
    """Share of the exact top ``k`` (flat index) each index finds for the first ``sample`` profiled users' vectors
    (recall), and the share of the first index's top ``k`` that the second finds (overlap)."""
    users = snapshot.users
    rows = [users.index[r.user_id] for r in reqs if r.user_id in users.index][:sample]
    queries = np.asarray(users.vectors[rows], dtype=np.float32)
    exact = AdIndex(snapshot.ads.vectors, kind="flat").search_many(queries, k)
    found = {n: index.search_many(queries, k) for n, index in indexes.items()}  # type: ignore[attr-defined]

    def share(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean([len(set(x.tolist()) & set(y.tolist())) / len(y) for x, y in zip(a, b, strict=True)]))

    (first, a), (second, b) = found.items()
    print(f"retrieval, top {k} of {len(rows)} user vectors: recall vs exact {first} {share(a, exact):.4f}, "
          f"{second} {share(b, exact):.4f}; {second} finds {share(b, a):.4f} of {first}'s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ads", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--index", default="ivf", choices=["ivf", "hnsw", "flat"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="deliver/ folder of an earlier version to compare with, request by request")
    parser.add_argument("--redis-url", default=None,
                        help="keep the counters in this (scratch) Redis instead of in-process")
    parser.add_argument("--baseline-redis-url", default=None,
                        help="a second scratch Redis for the baseline's counters (default: --redis-url)")
    parser.add_argument("--budget-ttl", type=float, default=None,
                        help="seconds the current engine's Redis counters keep a campaign's budget state read by "
                             "admission (default: RedisCounters' own)")
    args = parser.parse_args()
    if args.baseline_redis_url and not (args.redis_url and args.baseline_src):
        parser.error("--baseline-redis-url needs --redis-url and --baseline-src")
    import faiss

    faiss.omp_set_num_threads(1)
    print("command:", " ".join([".venv/bin/python", *sys.argv]))
    snapshot, scorer = build(args)
    settings = Settings(mode="test")
    reqs = requests(args)
    trips = RoundTrips() if args.redis_url else None
    run = f"{time.time():.0f}"  # a fresh key prefix per run, so that runs on one server do not share budgets
    ttl = {} if args.budget_ttl is None else {"budget_ttl_s": args.budget_ttl}
    counters = RedisCounters(args.redis_url, prefix=f"bench-{run}-current", **ttl) if args.redis_url else None
    engine = DecisionEngine(snapshot, counters, settings=settings, seed=args.seed)
    if args.baseline_src is not None:
        modules = baseline_modules(args.baseline_src)
        old_url = args.baseline_redis_url or args.redis_url
        old_counters = (modules["counters"].RedisCounters(old_url, prefix=f"bench-{run}-baseline")  # type: ignore[attr-defined]
                        if old_url else None)
        # the baseline searches its own version's index (same vectors, same seed)
        old_index = modules["retrieval"].AdIndex(snapshot.ads.vectors, kind=args.index)  # type: ignore[attr-defined]
        old = modules["engine"].DecisionEngine(dataclasses.replace(snapshot, index=old_index),  # type: ignore[attr-defined]
                                               old_counters, settings=settings, seed=args.seed)
        retrieval_overlap(snapshot, {"baseline": old_index, "current": snapshot.index}, reqs)
        servers = ({"baseline": old_url, "current": args.redis_url} if args.baseline_redis_url
                   else {"both engines": args.redis_url} if args.redis_url else {})
        interleaved({"baseline": old, "current": engine}, reqs, trips, servers)
    main_times = measure(engine, reqs, args.index)
    print(f"candidates scored per request: {scorer.scored / max(scorer.calls, 1):.0f} (mean)")
    flat = dataclasses.replace(snapshot, index=AdIndex(snapshot.ads.vectors, kind="flat"))
    engine.refresh(flat)
    peer_times = measure(engine, reqs, "flat")
    p99 = np.percentile(main_times, 99)
    print(f"ratio of CPU p99, exact flat index / {args.index}: {np.percentile(peer_times, 99) / p99:.2f}x; "
          f"goal CPU p99 < 2 ms: {'met' if p99 < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
