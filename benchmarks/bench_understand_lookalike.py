"""Look-alike latency over many users: IVF-Flat (what ``LookalikeIndex`` uses above ``ann_above``) vs exact flat
search, on clustered unit vectors (users share tastes, as real interest vectors do).

    .venv/bin/python benchmarks/bench_understand_lookalike.py [--users 1000000] [--dim 384] [--queries 300] \
        [--nprobe 8 16 32]

Each query takes 10 random seed users and asks for 1,000 look-alikes. Recall is IVF's overlap with the exact
answer on the first 30 queries, for each ``--nprobe`` on the same index.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from adpilot.understand.lookalike import LookalikeIndex


def clustered(n: int, dim: int, rng: np.random.Generator, clusters: int = 200) -> np.ndarray:
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries
        part = slice(start, min(n, start + 100_000))
        size = part.stop - part.start
        out[part] = centres[rng.integers(0, clusters, size)] + rng.normal(scale=0.8, size=(size, dim))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def timed(index: LookalikeIndex, seeds: list[list[str]]) -> tuple[np.ndarray, list[set[str]]]:
    latencies, answers = [], []
    for seed in seeds:
        start = time.perf_counter()
        found = index.query(seed, n=1000, threshold=-1.0)
        latencies.append((time.perf_counter() - start) * 1000)
        answers.append(set(found["user_id"]))
    return np.array(latencies), answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32], help="cells scanned per query")
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    rng = np.random.default_rng(args.seed)
    vectors = clustered(args.users, args.dim, rng)
    ids = [f"u{i}" for i in range(args.users)]
    seeds = [[ids[i] for i in rng.integers(0, args.users, 10)] for _ in range(args.queries)]
    start = time.perf_counter()
    ann = LookalikeIndex(ann_above=0).fit(ids, vectors)
    print(f"IVF index over {args.users:,} x {args.dim}: built in {time.perf_counter() - start:.0f} s")
    flat = LookalikeIndex(ann_above=args.users).fit(ids, vectors)
    flat_ms, exact = timed(flat, seeds[:30])
    print(f"flat  p50 {np.percentile(flat_ms, 50):6.1f} ms  p99 {np.percentile(flat_ms, 99):6.1f} ms (30 queries)")
    for nprobe in args.nprobe:
        ann.index_.nprobe = nprobe
        ms, answers = timed(ann, seeds)
        recall = np.mean([len(a & b) / max(len(b), 1) for a, b in zip(answers[:30], exact, strict=True)])
        print(f"IVF nprobe {nprobe:3d}: p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms; "
              f"recall@1000 vs exact {recall:.3f}; speed-up p50 vs flat "
              f"{np.percentile(flat_ms, 50) / np.percentile(ms, 50):.1f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
