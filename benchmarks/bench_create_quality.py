"""Copy quality on AdvertiseGen pairs (BLEU-4, ROUGE-L; leave-one-out pool, the reference never among the shots or
neighbours) with paired arms on the same sampled references: two outputs without a model — the nearest pool copy
and the copy assembled from the neighbours' sentences (``extractive``) — then the LLM's first draft, the session-5
setting (``--n`` drafts ranked by consensus against ``--neighbours`` retrieved copies), the same drafts with the
fused copy (``CopyWriter(fusion=True)``: the drafts' most consensual sentences), and with ``--more N`` the fused
copy of N drafts; ``selected``: the fused and the hybrid copies (drafts' and neighbours' human sentences) with the
drafts, ranked by the shipped learned selector (``create/selector.json``, fitted by ``adpilot creative
fit-selector`` on pairs from position 100). The ranked, fused and selected arms send the same prompts, so only
the first costs model calls (cache).
Differences are paired bootstrap intervals. ``--offset`` starts further in the sampled order: tune there (e.g.
``--offset 100``), report on the prefix.

    .venv/bin/python benchmarks/bench_create_quality.py --refs ../shared/data/advertisegen/copy.jsonl \\
        --limit 46 --n 3 --threads 1 --cache /tmp/create_quality.duckdb
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
from adpilot.create.evaluate import EvalResult, evaluate, typical_length
from adpilot.create.local import LocalLLM
from adpilot.create.metrics import mean_interval
from adpilot.create.retrieval import NEIGHBOURS, read_examples
from adpilot.create.selector import default_selector
from adpilot.create.writer import CopyWriter


def show(name: str, values: list[float] | np.ndarray, seed: int) -> None:
    mean, low, high = mean_interval(list(values), seed=seed)
    print(f"  {name:44s} {mean:6.2f}  [95% CI {low:6.2f}, {high:6.2f}]")


def violations(result: EvalResult) -> str:
    return f"{np.mean([r['violation'] for r in result.rows]):.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, default=Path("../shared/data/advertisegen/copy.jsonl"))
    parser.add_argument("--pool", type=Path, default=None, help="few-shot pool (default: leave-one-out)")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--offset", type=int, default=0, help="first position in the sampled order")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--more", type=int, default=0, help="also fuse this many drafts (more model calls)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--neighbours", type=int, default=NEIGHBOURS)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/create_quality.duckdb"))
    args = parser.parse_args()
    refs = read_examples(args.refs)
    pool = read_examples(args.pool) if args.pool else None
    common = {"k": args.k, "limit": args.limit, "seed": args.seed, "offset": args.offset,
              "neighbours": args.neighbours}
    nearest = evaluate(refs, None, pool, **common)
    extract = evaluate(refs, None, pool, baseline="extractive", **common)
    llm = CachedLLM(LocalLLM(threads=args.threads), duckdb.connect(str(args.cache)))
    writer = {"max_tokens": args.max_tokens, "temperature": args.temperature,
              "target_chars": typical_length(pool or refs)}
    started, cpu = time.perf_counter(), time.process_time()
    arms = {"ranked": evaluate(refs, CopyWriter(llm, n=args.n, **writer), pool, **common),
            "fused": evaluate(refs, CopyWriter(llm, n=args.n, fusion=True, **writer), pool, **common)}
    if (selector := default_selector()) is not None:
        arms["selected"] = evaluate(refs, CopyWriter(llm, n=args.n, fusion=True, hybrid=True, selector=selector,
                                                     **writer), pool, **common)
    if args.more:
        arms["fused-more"] = evaluate(refs, CopyWriter(llm, n=args.more, fusion=True, **writer), pool, **common)
    print(f"n={len(nearest.rows)} (sampled positions {args.offset}..{args.offset + len(nearest.rows) - 1}) "
          f"refs={args.refs} pool={args.pool or 'leave-one-out'} k={args.k} neighbours={args.neighbours} "
          f"variants={args.n} more={args.more} model={llm.name}; {time.perf_counter() - started:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} CPU-s, cache hits {llm.hits}/{llm.hits + llm.misses}; "
          f"load average {os.getloadavg()[0]:.1f}")
    for metric in ("bleu-4", "rouge-l"):
        value = {"nearest": np.array([r[metric] for r in nearest.rows]),
                 "extractive": np.array([r[metric] for r in extract.rows]),
                 **{name: np.array([r[metric] for r in result.rows]) for name, result in arms.items()}}
        first = np.array([r[f"unselected-{metric}"] for r in arms["ranked"].rows])
        print(metric)
        show("nearest pool copy (no LLM)", value["nearest"], args.seed)
        show("extractive: assembled copy (no LLM)", value["extractive"], args.seed)
        show("LLM first draft (no selection)", first, args.seed)
        show(f"LLM ranked: best of {args.n} drafts (session 5)", value["ranked"], args.seed)
        show(f"LLM fused: sentences of {args.n} drafts", value["fused"], args.seed)
        if args.more:
            show(f"LLM fused: sentences of {args.more} drafts", value["fused-more"], args.seed)
        show("paired: fused - ranked", value["fused"] - value["ranked"], args.seed)
        if "selected" in value:
            show("LLM selected: learned selector over all", value["selected"], args.seed)
            show("paired: selected - fused", value["selected"] - value["fused"], args.seed)
        show("paired: ranked - first draft", value["ranked"] - first, args.seed)
        show("paired: fused - extractive", value["fused"] - value["extractive"], args.seed)
        if args.more:
            show(f"paired: fused {args.more} - ranked {args.n}", value["fused-more"] - value["ranked"], args.seed)
            show(f"paired: fused {args.more} - fused {args.n}", value["fused-more"] - value["fused"], args.seed)
    print("violations in output: " + ", ".join(f"{name} {violations(result)}" for name, result in arms.items())
          + f"; LLM drafts rejected {100.0 * arms['ranked'].draft_violations / max(arms['ranked'].drafts, 1):.1f}%")
    print("command: .venv/bin/python benchmarks/bench_create_quality.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
