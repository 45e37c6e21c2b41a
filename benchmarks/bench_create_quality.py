"""Copy quality on AdvertiseGen pairs (BLEU-4, ROUGE-L; leave-one-out few-shot pool) with paired ablations on the
same sampled references: nearest pool copy (no LLM), the first 3-shot draft (retrieval only), and the draft
selected among ``n`` by the reference-free consensus (minimum Bayes risk against the other drafts and the retrieved
copies, plus attribute coverage). Differences are paired bootstrap intervals. ``--greedy-first`` makes draft 0 the
greedy completion.

    .venv/bin/python benchmarks/bench_create_quality.py --refs ../shared/data/advertisegen/copy.jsonl \\
        --limit 60 --n 3 --threads 1 --cache /tmp/create_quality.duckdb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from adpilot.create.cache import CachedLLM
from adpilot.create.evaluate import evaluate, typical_length
from adpilot.create.local import LocalLLM
from adpilot.create.metrics import mean_interval
from adpilot.create.retrieval import read_examples
from adpilot.create.writer import CopyWriter


def show(name: str, values: list[float] | np.ndarray, seed: int) -> None:
    mean, low, high = mean_interval(list(values), seed=seed)
    print(f"  {name:34s} {mean:6.2f}  [95% CI {low:6.2f}, {high:6.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, default=Path("../shared/data/advertisegen/copy.jsonl"))
    parser.add_argument("--pool", type=Path, default=None, help="few-shot pool (default: leave-one-out)")
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--greedy-first", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/create_quality.duckdb"))
    args = parser.parse_args()
    refs = read_examples(args.refs)
    pool = read_examples(args.pool) if args.pool else None
    nearest = evaluate(refs, None, pool, k=args.k, limit=args.limit, seed=args.seed)
    llm = CachedLLM(LocalLLM(threads=args.threads), duckdb.connect(str(args.cache)))
    started = time.perf_counter()
    writer = CopyWriter(llm, n=args.n, max_tokens=args.max_tokens, temperature=args.temperature,
                        target_chars=typical_length(pool or refs), greedy_first=args.greedy_first)
    written = evaluate(refs, writer, pool, k=args.k, limit=args.limit, seed=args.seed)
    seconds = time.perf_counter() - started
    print(f"n={len(written.rows)} refs={args.refs} pool={args.pool or 'leave-one-out'} k={args.k} "
          f"variants={args.n} model={llm.name}; {seconds:.0f} s, cache hits {llm.hits}/{llm.hits + llm.misses}")
    for metric, greedy in (("bleu-4", "unselected-bleu-4"), ("rouge-l", "unselected-rouge-l")):
        base = np.array([r[metric] for r in nearest.rows])
        first = np.array([r[greedy] for r in written.rows])
        chosen = np.array([r[metric] for r in written.rows])
        print(metric)
        show("nearest pool copy (no LLM)", base, args.seed)
        show("LLM, first 3-shot draft (retrieval)", first, args.seed)
        show(f"LLM, selected of {args.n} (+ selection)", chosen, args.seed)
        show("paired: first draft - nearest", first - base, args.seed)
        show("paired: selected - first draft", chosen - first, args.seed)
        print(f"  ratio selected/nearest: {chosen.mean() / max(base.mean(), 1e-9):.2f}")
    print(f"violations in output: {np.mean([r['violation'] for r in written.rows]):.1f}%; "
          f"drafts rejected: {100.0 * written.draft_violations / max(written.drafts, 1):.1f}%")
    print("command: .venv/bin/python benchmarks/bench_create_quality.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
