"""Quality on a synthetic world: interest recovery, next-item retrieval (Recall@K) and bot flags vs true bots.

    .venv/bin/adpilot world --help                      # make a world first, e.g. into /tmp/world
    .venv/bin/python benchmarks/bench_understand_quality.py WORLD_DIR [--encoder use|e5] [--k 50] [--cold-max 5]

The world's Parquet files are copied into a fresh store; each user's last item event is held out before the
profiles are built (so the recovery figures are measured on the training part too). For a cold set of useful
size, make the catalogue large for the events (``adpilot world --users 5000 --products 3000``) and raise
``--cold-max`` (items with at most that many training interactions count as cold).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from adpilot.config import Settings
from adpilot.store import Store
from adpilot.understand.anomalies import flag_users
from adpilot.understand.evaluate import (
    bot_flag_quality,
    hold_out_last_items,
    interest_recovery,
    load_world_store,
    next_item_retrieval,
)
from adpilot.understand.items import build_product_vectors
from adpilot.understand.profiles import build_profiles
from adpilot.understand.registry import get_encoder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("world_dir", type=Path)
    parser.add_argument("--encoder", default="use")
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--cold-max", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    encoder = get_encoder(args.encoder, Settings(encoder_threads=args.threads))
    with Store(Path(tempfile.mkdtemp()) / "quality.duckdb") as store:
        load_world_store(args.world_dir, store)
        held = hold_out_last_items(store)
        start = time.perf_counter()
        build_product_vectors(store, encoder)
        build_profiles(store, encoder)
        print(f"profiles built in {time.perf_counter() - start:.1f} s ({encoder.name})")
        recovery = interest_recovery(store, args.world_dir / "truth", encoder.name, k=3)
        retrieval = next_item_retrieval(store, held, encoder.name, k=args.k, cold_max=args.cold_max)
        bots = bot_flag_quality(flag_users(store), args.world_dir / "truth")
    print(json.dumps({"interest_recovery": recovery, "next_item": retrieval, "bot_flags": bots}, indent=2))
    for name, peer in (("interest_ann", "popularity"), ("lm_profile", "item_cf")):
        for part in ("recall", "recall_cold"):
            a, b = retrieval[name][part], retrieval[peer][part]
            if a is not None and b is not None:
                ratio = f"{a / b:.2f}" if b > 0 else "n/a"
                print(f"ratio {name} / {peer} {part}@{args.k} = {ratio} ({a:.3f} vs {b:.3f})")


if __name__ == "__main__":
    main()
