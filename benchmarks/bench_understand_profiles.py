"""Profile build, incremental update and look-alike latency at scale, on a generated store (vectors cached).

    .venv/bin/python benchmarks/bench_understand_profiles.py [--users 1000000] [--events 20000000] \
        [--products 50000] [--store PATH] [--seed 0] [--memory-limit 3GB] [--generate-only] [--updates 3] \
        [--skip-build] [--skip-lookalike] [--encoder e5|use]

An existing ``--store`` that already holds events is reused as it is (generate once, then time the build in a
fresh process, so peak RSS is the build's and not the generator's).

Events are views / carts / purchases / searches of a few hundred distinct queries, spread over 30 days. Product
vectors are random unit vectors written straight to ``product_vectors`` and the queries are encoded once before
the clock starts, so the timings measure profile work, not the encoder. ``--encoder`` sets the vectors' size: the
default encoder's 384 floats (e5), or USE's 512 (the figures before session 9 are USE's); a store is generated for
one encoder. Each of ``--updates`` updates folds in a
further 5% of events (a new day each): an update leaves its replaced rows deleted, and from the third update on
each also moves the oldest, mostly dead rows to the end of the tables (``understand.compaction``), so several
updates (``--updates 6``) show the steady state; "rows stored" counts the dead rows still held.
``--skip-build`` times only the updates of a store whose profiles are built (copy it first: updates change it).
The peer ratio compares an update with the build, measured in the same run. CPU seconds count DuckDB's threads
too; the machine's load average is printed at the start and the end. To compare two versions of the code on the
updates, run each on its own copy of one built store, back to back (``PYTHONPATH=OLD_SRC`` for the peer), with
``--skip-build --skip-lookalike``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from adpilot.config import Settings
from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.interest import load_interest_vectors
from adpilot.understand.items import PRODUCT_VECTORS_DDL
from adpilot.understand.lookalike import LookalikeIndex
from adpilot.understand.profiles import build_profiles, update_profiles
from adpilot.understand.registry import get_encoder
from adpilot.understand.vectors import to_list_array

START = np.datetime64("2026-01-01T00:00:00")
TYPES = np.array(["page_view", "page_view", "page_view", "click", "add_to_cart", "purchase", "search"])


def events_table(n: int, users: int, products: int, start: np.datetime64, rng: np.random.Generator,
                 queries: list[str], offset: int) -> pa.Table:
    # a heavy-tailed half (a few users with millions of events) and a uniform half, so every user shows up
    user = np.where(rng.random(n) < 0.5, rng.zipf(1.3, n) % users, rng.integers(0, users, n))
    kind = TYPES[rng.integers(0, len(TYPES), n)]
    item = rng.zipf(1.2, n) % products
    ts = start + rng.integers(0, 30 * 86400, n).astype("timedelta64[s]")
    search = kind == "search"
    return pa.table({
        "event_id": pa.array(np.char.add("e", np.arange(offset, offset + n).astype(str))),
        "user_id": pa.array(np.char.add("u", user.astype(str))),
        "session_id": pa.array(np.char.add(np.char.add("s", user.astype(str)), (ts.astype("datetime64[D]")
                                                                               .astype(str)))),
        "ts": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "type": pa.array(kind),
        "item_id": pa.array(np.char.add("p", item.astype(str)), mask=search),
        "query": pa.array(np.array(queries, dtype=object)[rng.integers(0, len(queries), n)], mask=~search),
        "device": pa.array(np.array(["ios", "android", "web"])[user % 3]),
        "geo": pa.array(np.array(["上海", "北京", "杭州", "成都"])[user % 4]),
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate-only", action="store_true", help="fill --store and stop")
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB's memory_limit (spills beyond it)")
    parser.add_argument("--updates", type=int, default=3, help="updates of 5%% more events each, one after another")
    parser.add_argument("--skip-build", action="store_true", help="time only the updates of the built profiles")
    parser.add_argument("--skip-lookalike", action="store_true", help="stop after the updates")
    parser.add_argument("--encoder", choices=["e5", "use"], default="e5",
                        help="whose vectors: e5 (384-d, the default encoder) or use (512-d)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    print(f"command: {' '.join(sys.argv)}")
    rng = np.random.default_rng(args.seed)
    path = args.store or Path(tempfile.mkdtemp()) / "bench.duckdb"
    encoder = get_encoder(args.encoder, Settings(encoder_threads=1))
    queries = [f"{a} {b}" for a in ("篮球鞋", "绿茶", "手机", "连衣裙", "running shoes", "咖啡")
               for b in ("男", "女", "新款", "折扣", "正品")]
    reuse = path.exists()
    with Store(path) as store:
        con = store.con
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        if reuse and con.sql("SELECT count(*) FROM events").fetchall()[0][0]:
            print(f"store: reusing {path}")
        else:
            _generate(store, args, rng, encoder, queries)
        if args.generate_only:
            return

        threads = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
        print(f"load average {os.getloadavg()[0]:.1f}; DuckDB threads {threads}, {os.cpu_count()} CPUs")
        if not args.skip_build:
            t, cpu = time.perf_counter(), time.process_time()
            n = build_profiles(store, encoder)
            build_s = time.perf_counter() - t
            print(f"build: {n:,} profiles in {build_s:.1f} s wall, {time.process_time() - cpu:.1f} s CPU; "
                  f"peak RSS {_rss():.0f} MiB")
        for k in range(args.updates):
            new = events_table(args.events // 20, args.users, args.products,
                               START + np.timedelta64(30 + k, "D"), rng, queries, args.events * (1 + k))
            t, cpu, before = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
            touched = update_profiles(store, encoder, events=new)
            update_s, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
            stored, live = con.sql("SELECT (SELECT sum(count) FROM pragma_storage_info('profiles') WHERE "
                                   "column_path = '[0]'), count(*) FROM profiles").fetchall()[0]
            print(f"update {k + 1}: {new.num_rows:,} events -> {touched:,} profiles in {update_s:.1f} s wall, "
                  f"{time.process_time() - cpu:.1f} s CPU (user {after.ru_utime - before.ru_utime:.1f}, system "
                  f"{after.ru_stime - before.ru_stime:.1f}, {(after.ru_minflt - before.ru_minflt) / 1e6:.2f}M minor "
                  f"faults); peak RSS {_rss():.0f} MiB; {stored:,} rows stored for {live:,} profiles")
            if not args.skip_build:
                print(f"ratio update/build time = {update_s / build_s:.2f} (events ratio 0.05)")
        print(f"load average {os.getloadavg()[0]:.1f}")
        if args.skip_lookalike:
            return

        users, matrix = load_interest_vectors(store)
        index = LookalikeIndex().fit(users, matrix)
        latencies = []
        for _ in range(200):
            seeds = [users[i] for i in rng.integers(0, len(users), 10)]
            t = time.perf_counter()
            index.query(seeds, n=1000, threshold=0.0)
            latencies.append(time.perf_counter() - t)
        ms = np.array(latencies) * 1000
        print(f"look-alike over {len(users):,} users ({type(index.index_).__name__}): "
              f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms; peak RSS {_rss():.0f} MiB")


def _generate(store: Store, args: argparse.Namespace, rng: np.random.Generator, encoder: TextEncoder,
              queries: list[str]) -> None:
    con = store.con
    ids = np.char.add("p", np.arange(args.products).astype(str))
    # from a generator of their own, so that the events are the same whatever the encoder
    vectors = np.random.default_rng([args.seed, encoder.dim]).normal(size=(args.products, encoder.dim))
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    catalog = pa.table({"product_id": pa.array(ids), "title": pa.array(np.char.add("商品 ", ids)),  # noqa: F841
                         "price": pa.array(rng.lognormal(4, 1, args.products)),
                         "category": pa.array([["类目" + str(i % 20), "子类" + str(i % 200)]
                                               for i in range(args.products)]),
                         "brand": pa.array(np.char.add("品牌", (np.arange(args.products) % 500).astype(str)))})
    con.execute("INSERT INTO products (product_id, title, price, category, brand) SELECT * FROM catalog")
    con.execute(PRODUCT_VECTORS_DDL)
    pv = pa.table({"product_id": pa.array(ids), "encoder": pa.array([encoder.name] * args.products),  # noqa: F841
                   "vector": to_list_array(vectors)})
    con.execute("INSERT INTO product_vectors SELECT * FROM pv")
    con.execute("CREATE TABLE IF NOT EXISTS product_keywords AS "
                "SELECT product_id, category[2] AS keyword FROM products")
    encode_cached(store, encoder, queries, kind="query")
    for offset in range(0, args.events, 2_000_000):
        batch = events_table(min(2_000_000, args.events - offset), args.users, args.products, START, rng,
                             queries, offset)
        con.execute(f"INSERT INTO events ({', '.join(batch.column_names)}) SELECT * FROM batch")
    print(f"store: {args.events:,} events, {args.products:,} products")


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
