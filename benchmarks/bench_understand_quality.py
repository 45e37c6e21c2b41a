"""Quality on a synthetic world: interest recovery, next-item retrieval (Recall@K) and bot flags vs true bots.

    .venv/bin/adpilot world --help                      # make a world first, e.g. into /tmp/world
    .venv/bin/python benchmarks/bench_understand_quality.py WORLD_DIR [--encoder use|e5] [--k 50]
        [--split time|last] [--test-days 3] [--threads 1] [--no-adapter] [--adapter-steps 400] [--cold-slots 3]

The world's Parquet files are copied into a fresh store and the test part is removed before the profiles are
built (so the recovery figures are measured on the training part too). ``--split time`` (default) removes the
last ``--test-days`` days and asks for each user's first item after the cutoff: items launched late then have no
training interaction at all, which is what cold means here. ``--split last`` holds out each user's last item
event only; other users' later events stay in training, so it has almost no cold items. For a cold set of useful
size, make the catalogue and population large (``adpilot world --users 20000 --events 800000 --products 4000``)
and the test period longer (``--test-days 7``).

The learned two-tower :class:`~adpilot.understand.adapter.LMAdapter` is fitted on the training part
(``--threads`` torch threads; its wall and CPU seconds are printed) and compared on the same users as
``lm_adapter`` (alone), ``lm_adapter_cf`` (with item-CF) and ``lm_adapter_cf_cold<m>`` (with item-CF, the last
``m`` of the top ``--k`` kept for the best cold items; ``--cold-slots`` defaults to the recommended setting of
:mod:`adpilot.understand.retrieval`), paired against item-CF and popularity.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from adpilot.config import Settings
from adpilot.store import Store
from adpilot.understand.adapter import LMAdapter
from adpilot.understand.anomalies import flag_users
from adpilot.understand.evaluate import (
    bot_flag_quality,
    hold_out_after,
    hold_out_last_items,
    interest_recovery,
    load_world_store,
    next_item_retrieval,
)
from adpilot.understand.items import build_product_vectors
from adpilot.understand.profiles import build_profiles
from adpilot.understand.registry import get_encoder
from adpilot.understand.retrieval import COLD_SLOTS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("world_dir", type=Path)
    parser.add_argument("--encoder", default="use")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--split", choices=("time", "last"), default="time")
    parser.add_argument("--test-days", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-adapter", action="store_true", help="skip the learned two-tower adapter")
    parser.add_argument("--adapter-steps", type=int, default=LMAdapter().steps)
    parser.add_argument("--cold-slots", type=int, nargs="*", default=[COLD_SLOTS],
                        help="places of the top k kept for items without interactions (lm_adapter_cf_cold<m>)")
    args = parser.parse_args()
    print(f"command: .venv/bin/python {' '.join(sys.argv)}")
    print(f"load average at start: {os.getloadavg()}")
    encoder = get_encoder(args.encoder, Settings(encoder_threads=args.threads))
    with Store(Path(tempfile.mkdtemp()) / "quality.duckdb") as store:
        load_world_store(args.world_dir, store)
        held = hold_out_after(store, args.test_days) if args.split == "time" else hold_out_last_items(store)
        start = time.perf_counter()
        build_product_vectors(store, encoder)
        build_profiles(store, encoder)
        print(f"profiles built in {time.perf_counter() - start:.1f} s ({encoder.name})")
        recovery = interest_recovery(store, args.world_dir / "truth", encoder.name, k=3)
        adapter = None if args.no_adapter else LMAdapter(steps=args.adapter_steps, threads=args.threads,
                                                         seed=args.seed)
        retrieval = next_item_retrieval(store, held, encoder.name, k=args.k, seed=args.seed, adapter=adapter,
                                        cold_slots=tuple(args.cold_slots))
        bots = bot_flag_quality(flag_users(store), args.world_dir / "truth")
    print(json.dumps({"interest_recovery": recovery, "next_item": retrieval, "bot_flags": bots}, indent=2))
    if adapter is not None:
        print(f"adapter fitted in {retrieval['adapter_fit_seconds']:.1f} s wall, "
              f"{retrieval['adapter_fit_cpu_seconds']:.1f} CPU-s ({args.threads} threads)")
    for name in (key.removesuffix("_minus_item_cf") for key in retrieval if key.endswith("_minus_item_cf")):
        for peer in ("item_cf", "popularity"):
            for part in ("recall", "recall_cold"):
                a, b = retrieval[name][part], retrieval[peer][part]
                if a is not None and b is not None:
                    ratio = f"{a['mean'] / b['mean']:.2f}" if b["mean"] > 0 else "n/a (peer 0)"
                    d = retrieval[f"{name}_minus_{peer}"][part]
                    print(f"ratio {name} / {peer} {part}@{args.k} = {ratio} ({_fmt(a)} vs {_fmt(b)}; "
                          f"difference {_fmt(d, sign='+')})")
    print(f"load average at end: {os.getloadavg()}")


def _fmt(value: dict[str, float], sign: str = "") -> str:
    return f"{value['mean']:{sign}.3f} [{value['low']:{sign}.3f}, {value['high']:{sign}.3f}] n={value['n']}"


if __name__ == "__main__":
    main()
