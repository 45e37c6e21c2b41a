"""Copy quality on AdvertiseGen pairs (BLEU-4, ROUGE-L; leave-one-out pool, the reference never among the shots or
neighbours) with paired arms on the same sampled references: two outputs without a model — the nearest pool copy
and the copy assembled from the neighbours' sentences (``extractive``) — then the LLM with the former setting
(drafts ranked against the k shots only) and with the current one (ranked against ``--neighbours`` retrieved
copies, with the extractive candidate competing when ``--extractive``). Both LLM arms send the same prompts, so
the second costs no model call (cache). Differences are paired bootstrap intervals.

    .venv/bin/python benchmarks/bench_create_quality.py --refs ../shared/data/advertisegen/copy.jsonl \\
        --limit 30 --n 3 --threads 1 --cache /tmp/create_quality.duckdb
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

from adpilot.create.cache import CachedLLM
from adpilot.create.evaluate import evaluate, typical_length
from adpilot.create.local import LocalLLM
from adpilot.create.metrics import mean_interval
from adpilot.create.retrieval import NEIGHBOURS, read_examples
from adpilot.create.writer import CopyWriter


def show(name: str, values: list[float] | np.ndarray, seed: int) -> None:
    mean, low, high = mean_interval(list(values), seed=seed)
    print(f"  {name:40s} {mean:6.2f}  [95% CI {low:6.2f}, {high:6.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, default=Path("../shared/data/advertisegen/copy.jsonl"))
    parser.add_argument("--pool", type=Path, default=None, help="few-shot pool (default: leave-one-out)")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS)
    parser.add_argument("--extractive", action=argparse.BooleanOptionalAction, default=False,
                        help="the assembled copy competes in the current setting (as in `adpilot creative eval`)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--greedy-first", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/create_quality.duckdb"))
    args = parser.parse_args()
    refs = read_examples(args.refs)
    pool = read_examples(args.pool) if args.pool else None
    common = {"k": args.k, "limit": args.limit, "seed": args.seed}
    nearest = evaluate(refs, None, pool, **common)
    extract = evaluate(refs, None, pool, neighbours=args.neighbours, baseline="extractive", **common)
    llm = CachedLLM(LocalLLM(threads=args.threads), duckdb.connect(str(args.cache)))
    writer = {"n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature,
              "target_chars": typical_length(pool or refs), "greedy_first": args.greedy_first}
    started, cpu = time.perf_counter(), time.process_time()
    former = evaluate(refs, CopyWriter(llm, **writer), pool, neighbours=args.k, **common)
    current = evaluate(refs, CopyWriter(llm, extractive=args.extractive, **writer), pool,
                       neighbours=args.neighbours, **common)
    print(f"n={len(current.rows)} refs={args.refs} pool={args.pool or 'leave-one-out'} k={args.k} "
          f"neighbours={args.neighbours} variants={args.n} extractive={args.extractive} model={llm.name}; "
          f"{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} CPU-s, "
          f"cache hits {llm.hits}/{llm.hits + llm.misses}; load average {os.getloadavg()[0]:.1f}")
    for metric in ("bleu-4", "rouge-l"):
        arms = {name: np.array([r[metric] for r in result.rows])
                for name, result in (("nearest", nearest), ("extractive", extract), ("former", former),
                                     ("current", current))}
        first = np.array([r[f"unselected-{metric}"] for r in current.rows])
        print(metric)
        show("nearest pool copy (no LLM)", arms["nearest"], args.seed)
        show("extractive: assembled copy (no LLM)", arms["extractive"], args.seed)
        show("LLM first draft (no selection)", first, args.seed)
        show(f"LLM former: {args.n} drafts ranked vs {args.k} shots", arms["former"], args.seed)
        show("LLM current setting", arms["current"], args.seed)
        show("paired: current - former", arms["current"] - arms["former"], args.seed)
        show("paired: current - first draft", arms["current"] - first, args.seed)
        show("paired: current - extractive", arms["current"] - arms["extractive"], args.seed)
        show("paired: extractive - nearest", arms["extractive"] - arms["nearest"], args.seed)
    chosen = np.mean([r["chosen-extractive"] for r in current.rows])
    print(f"violations in output: former {np.mean([r['violation'] for r in former.rows]):.1f}%, current "
          f"{np.mean([r['violation'] for r in current.rows]):.1f}%; LLM drafts rejected "
          f"{100.0 * current.draft_violations / max(current.drafts, 1):.1f}%; extractive chosen {chosen:.0f}%")
    print("command: .venv/bin/python benchmarks/bench_create_quality.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
