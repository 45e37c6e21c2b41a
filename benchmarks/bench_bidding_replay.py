"""Bidding replay on the iPinYou validation episodes: every strategy, every campaign, c0 in {1/32, 1/16, 1/8}.

Out of sample by halves: strategies that tune (Lin-bid's b0, the re-solving pacer's spend curve) tune on the
even-numbered episodes and are scored on the odd ones, and the reverse; Mcpc and RLB tune nothing and are scored
on the same halves. Prints both halves, the pooled figures, our pacer's click ratio against Lin-bid and RLB
(peers measured in the same run) and the time each strategy took.

    .venv/bin/python benchmarks/bench_bidding_replay.py [--data DIR] [--budget-ratios 1/32,1/16,1/8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from adpilot.deliver.bidding import episode_budget
from adpilot.measure.cli_replay import format_table
from adpilot.measure.intervals import bootstrap_interval
from adpilot.measure.replay import STRATEGIES, halves, parse_ratio, read_campaign_stats, read_episodes, replay


def run(root: Path, campaigns: list[str], ratio_text: str) -> tuple[list[dict], dict[str, float]]:
    ratio = parse_ratio(ratio_text)
    rows, seconds = [], dict.fromkeys(STRATEGIES, 0.0)
    for camp in campaigns:
        stats = read_campaign_stats(root / f"info_{camp}.json")
        episodes = read_episodes(root / "validation_1000" / f"{camp}.validation.txt")
        budget = episode_budget(stats, ratio, episodes.horizon)
        for name, spec in STRATEGIES.items():
            start = time.perf_counter()
            untuned = None if spec.tunes else spec.build(stats, None, budget)
            results, tuned = [], []
            for tune, test in halves(episodes):
                bidder = untuned or spec.build(stats, tune, budget)
                results.append(replay(bidder, test, budget))
                tuned.append(spec.describe(bidder))
            seconds[name] += time.perf_counter() - start
            pooled = results[0] + results[1]
            totals = pooled.totals()
            rows.append({"per_episode": pooled.clicks, "campaign": camp, "strategy": name, "even->odd": int(results[0].clicks.sum()),
                         "odd->even": int(results[1].clicks.sum()), "clicks": totals["clicks"],
                         "impressions": totals["impressions"], "win rate": f"{totals['win_rate']:.2%}",
                         "spend": totals["spend"], "budget": budget, "budget used": f"{totals['budget_used']:.1%}",
                         "CPM": f"{totals['cpm']:.2f}", "eCPC": f"{totals['ecpc']:.2f}",
                         "tuned": " / ".join(filter(None, tuned))})
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("ADPILOT_SHARED_DATA", "../shared/data"))
                        / "ipinyou_rtb_rlbdp")
    parser.add_argument("--budget-ratios", default="1/32,1/16,1/8")
    parser.add_argument("--campaigns", default="1458,2259,2261,2821,3358,3386")
    args = parser.parse_args()
    print("command:", " ".join([sys.executable, *sys.argv]))
    columns = ("campaign", "strategy", "even->odd", "odd->even", "clicks", "impressions", "win rate", "spend",
               "budget", "budget used", "CPM", "eCPC", "tuned")
    for ratio_text in args.budget_ratios.split(","):
        rows, seconds = run(args.data, args.campaigns.split(","), ratio_text)
        print(f"\nc0 = {ratio_text}: clicks on the out-of-sample halves (T = 1000 auctions per episode)")
        print(format_table(rows, columns))
        clicks = {(r["campaign"], r["strategy"]): r["clicks"] for r in rows}
        episodes = {(r["campaign"], r["strategy"]): r["per_episode"] for r in rows}
        camps = sorted({r["campaign"] for r in rows})
        for peer in ("lin", "rlb", "mcpc"):
            ours, theirs = (sum(clicks[c, s] for c in camps) for s in ("resolve", peer))
            beaten = sum(clicks[c, "resolve"] > clicks[c, peer] for c in camps)
            gap = np.concatenate([episodes[c, "resolve"] - episodes[c, peer] for c in camps])
            paired = bootstrap_interval(lambda idx, gap=gap: gap[idx].sum(axis=1), len(gap),
                                        estimate=float(gap.sum()), random_state=0)
            print(f"resolve vs {peer}: {ours} / {theirs} clicks = {ours / max(theirs, 1):.3f}x, "
                  f"more clicks on {beaten}/{len(camps)} campaigns; extra clicks {paired.format(0)} "
                  f"(paired bootstrap over {len(gap)} episodes, 95%)")
        print("seconds: " + ", ".join(f"{name} {s:.1f}" for name, s in seconds.items()))


if __name__ == "__main__":
    main()
