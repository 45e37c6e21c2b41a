"""Synthetic world generation speed and memory, against pyarrow alone writing as many random event rows.

Run: ``.venv/bin/python benchmarks/bench_datasets_world.py --events 10000000``

Each side runs in its own process so that its peak RSS is its own. Wall-clock rates depend on what else runs on
the machine; CPU seconds (all threads of the process, event stream only) much less. The peer writes the same number of rows in the
same schema (``EVENT_ARROW_SCHEMA``), the same row groups and writer options, with columns drawn at random from small
dictionaries: the floor of what writing costs here, with no behaviour model at all.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adpilot.datasets.world import CHUNK_ROWS, EVENT_WRITE_OPTIONS, WorldConfig, write_world
from adpilot.schema import EVENT_ARROW_SCHEMA


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_world(out: Path, n_events: int, n_users: int, seed: int) -> dict[str, float]:
    stats = write_world(out, WorldConfig(n_users=n_users, n_events=n_events, seed=seed))
    return {"seconds": stats.seconds_events, "setup_seconds": stats.seconds_entities, "peak_mib": _peak_mib(),
            "cpu_seconds": stats.cpu_seconds_events, "bytes": (out / "events.parquet").stat().st_size}


def run_peer(out: Path, n_events: int, n_users: int, seed: int) -> dict[str, float]:
    cpu = time.process_time()
    rng = np.random.default_rng(seed)
    users = pa.array([f"u{i}" for i in range(n_users)])
    words = pa.array([f"w{i}" for i in range(1000)])
    start = time.perf_counter()
    with pq.ParquetWriter(out / "events.parquet", EVENT_ARROW_SCHEMA, **EVENT_WRITE_OPTIONS) as writer:
        for begin in range(0, n_events, CHUNK_ROWS):
            n = min(CHUNK_ROWS, n_events - begin)
            columns = {}
            for field in EVENT_ARROW_SCHEMA:
                if field.name in ("event_id", "session_id"):
                    columns[field.name] = pa.array(begin + np.arange(n)).cast(pa.string())
                elif field.name == "user_id":
                    columns[field.name] = users.take(pa.array(rng.integers(0, n_users, n)))
                elif pa.types.is_string(field.type):
                    columns[field.name] = words.take(pa.array(rng.integers(0, 1000, n)))
                elif pa.types.is_timestamp(field.type):
                    columns[field.name] = pa.array(np.sort(rng.integers(0, 86_400 * 10**6, n))).cast(field.type)
                else:
                    columns[field.name] = pa.array(rng.random(n))
            writer.write_table(pa.table(columns, schema=EVENT_ARROW_SCHEMA), row_group_size=CHUNK_ROWS)
    return {"seconds": time.perf_counter() - start, "setup_seconds": 0.0, "peak_mib": _peak_mib(),
            "cpu_seconds": time.process_time() - cpu, "bytes": (out / "events.parquet").stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=None, help="default: events // 50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--side", choices=["world", "peer"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    users = args.users or max(args.events // 50, 100)
    if args.side:
        run = run_world if args.side == "world" else run_peer
        print(json.dumps(run(args.out, args.events, users, args.seed)))
        return
    results = {}
    for side in ("peer", "world"):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, __file__, "--side", side, "--out", tmp, "--events",
                                   str(args.events), "--users", str(users), "--seed", str(args.seed)],
                                  check=True, capture_output=True, text=True)
            results[side] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"command: .venv/bin/python benchmarks/bench_datasets_world.py --events {args.events} --users {users}")
    for side, r in results.items():
        print(f"{side:5s}: {args.events:,} events in {r['seconds']:.1f} s = {args.events / r['seconds']:,.0f} "
              f"events/s written (+{r['setup_seconds']:.1f} s entities); {r['cpu_seconds']:.1f} CPU-s = "
              f"{args.events / r['cpu_seconds']:,.0f} events per CPU-s; peak RSS {r['peak_mib']:,.0f} MiB; "
              f"file {r['bytes'] / 2**20:,.0f} MiB")
    ratio = results["peer"]["seconds"] / results["world"]["seconds"]
    cpu_ratio = results["peer"]["cpu_seconds"] / results["world"]["cpu_seconds"]
    print(f"world speed / pyarrow-alone speed = {ratio:.2f} (wall clock), {cpu_ratio:.2f} (CPU time)")


if __name__ == "__main__":
    main()
