"""Lift of adpilot's full path over untargeted delivery, against the synthetic world's truth, across seeds.

Each seed builds its own world (users, catalogue, campaigns), runs world → ingest → understand → train → simulate
exactly as ``make demo`` does, and records the true-CTR and true-CVR lift of every policy over untargeted delivery.
The spread over seeds is the honest interval (within-run bootstrap intervals ignore world-to-world variation).

    .venv/bin/python benchmarks/bench_measure_simulation_seeds.py --seeds 5 --users 5000 --events 200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from adpilot.config import Settings
from adpilot.pipeline import DemoConfig, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=4_000)
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            config = DemoConfig(home=Path(tmp), users=args.users, events=args.events, seed=seed,
                                sim_requests_per_day=args.requests)
            result = run_demo(config, Settings(mode="demo", encoder="use"), echo=lambda _: None)
        summary = result["summary"].assign(seed=seed)
        rows.append(summary)
        full = summary.set_index("policy").loc["adpilot"]
        print(f"seed {seed}: adpilot CTR lift {full['ctr_lift']:+.1%}, CVR lift {full['cvr_lift']:+.1%}, "
              f"overspend {result['simulation'].overspend():.3%} ({time.perf_counter() - started:.0f} s)", flush=True)
    table = pd.concat(rows, ignore_index=True)
    print(f"\n{'policy':<12}{'CTR lift (mean, 95% t-interval over seeds)':<46}{'CVR lift':<40}")
    for policy, part in table.groupby("policy", sort=False):
        cells = []
        for metric in ("ctr_lift", "cvr_lift"):
            values = part[metric].to_numpy()
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
            cells.append(f"{values.mean():+.1%} [{values.mean() - half:+.1%}, {values.mean() + half:+.1%}]")
        print(f"{policy:<12}{cells[0]:<46}{cells[1]:<40}")
    print(f"\nreproduce: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
