"""Encoding throughput (texts/s) and resident memory of the e5 and USE encoders on real Chinese review text.

    .venv/bin/python benchmarks/bench_understand_encoders.py [REVIEWS_CSV] [--n 400] [--threads 2]

REVIEWS_CSV defaults to $ADPILOT_SHARED_DATA/chinese_ecommerce_reviews/online_shopping_10_cats.csv (column review).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import pandas as pd

from adpilot.understand.encoders import E5Encoder, USEEncoder


def main() -> None:
    default = Path(os.environ.get("ADPILOT_SHARED_DATA", "../shared/data")) / "chinese_ecommerce_reviews" / \
        "online_shopping_10_cats.csv"
    parser = argparse.ArgumentParser()
    parser.add_argument("reviews", nargs="?", default=str(default))
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    texts = pd.read_csv(args.reviews)["review"].dropna().astype(str).head(args.n).tolist()
    print(f"command: {' '.join(sys.argv)}")
    print(f"{len(texts)} texts, mean {sum(map(len, texts)) / len(texts):.0f} characters, threads={args.threads}")
    rates = {}
    for encoder in (USEEncoder(threads=args.threads), E5Encoder(threads=args.threads)):
        encoder.encode(texts[:8], kind="passage")  # load the model outside the clock
        start, cpu = time.perf_counter(), time.process_time()
        encoder.encode(texts, kind="passage")
        rates[encoder.name] = len(texts) / (time.perf_counter() - start)
        per_cpu = len(texts) / (time.process_time() - cpu)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{encoder.name:4s} {rates[encoder.name]:8.1f} texts/s wall, {per_cpu:8.1f} texts per CPU-second; "
              f"peak RSS so far {rss:.0f} MiB")
    print(f"ratio use/e5 = {rates['use'] / rates['e5']:.1f}x")


if __name__ == "__main__":
    main()
