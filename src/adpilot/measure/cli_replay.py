"""``adpilot replay bidding``: replay bidding strategies on logged RTB auctions and print one table.

Strategies that need tuning (Lin-bid's base bid, the re-solving pacer's spend curve) tune on ``--tune-log`` when
it is given and are replayed on the whole ``--log``; otherwise they are cross-fitted on the log itself: tuned on
its even-numbered episodes and replayed on the odd ones, and the reverse, the two halves pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adpilot.errors import UserError

replay_app = typer.Typer(help="Replay decision policies on logged data.", no_args_is_help=True)

COLUMNS = ("campaign", "strategy", "episodes", "budget", "clicks", "clicks 95% CI", "impressions", "win rate",
           "spend", "budget used", "CPM", "eCPC", "tuned")


def campaign_label(path: Path) -> str:
    """``1458.validation.txt`` -> ``1458``, ``2997_test.theta.txt`` -> ``2997``: the file name's first token."""
    return path.name.split(".")[0].split("_")[0]


def bidding_table(logs: list[Path], infos: list[Path], budget_ratio: float, strategies: list[str],
                  tune_logs: list[Path] | None = None, episode_length: int = 1000, seed: int = 0,
                  curves: list[dict] | None = None) -> list[dict]:
    """One row per (campaign, strategy) with the pooled out-of-sample figures and a bootstrap interval; with
    ``curves``, also one row per (campaign, strategy, episode) of cumulative spend and clicks (the report's plot)."""
    import numpy as np

    from adpilot.deliver.bidding import episode_budget
    from adpilot.measure.replay import evaluate, read_campaign_stats, read_episodes

    if len(infos) != len(logs):
        raise UserError(f"`--train-info` must be given once per `--log`, got {len(infos)} for {len(logs)} logs")
    if tune_logs and len(tune_logs) != len(logs):
        raise UserError(f"`--tune-log` must be given once per `--log`, got {len(tune_logs)} for {len(logs)} logs")
    rows = []
    for i, (log, info) in enumerate(zip(logs, infos, strict=True)):
        episodes = read_episodes(log, horizon=episode_length)
        stats = read_campaign_stats(info)
        tune = read_episodes(tune_logs[i], horizon=episode_length) if tune_logs else None
        budget = episode_budget(stats, budget_ratio, episodes.horizon)
        for name in strategies:
            evaluation = evaluate(name, stats, episodes, budget, tune)
            totals = evaluation.result.totals()
            if curves is not None:
                spend, clicks = np.cumsum(evaluation.result.spend), np.cumsum(evaluation.result.clicks)
                curves.extend({"bidder": f"{campaign_label(log)} {name}", "step": step, "spend": float(s_),
                               "clicks": float(c_)} for step, (s_, c_) in enumerate(zip(spend, clicks, strict=True)))
            rows.append({"campaign": campaign_label(log), "strategy": name, "episodes": totals["episodes"],
                         "budget": budget, "clicks": totals["clicks"],
                         "clicks 95% CI": evaluation.result.clicks_interval(random_state=seed).format(0)
                         .split(" ", 1)[1],
                         "impressions": totals["impressions"], "win rate": f"{totals['win_rate']:.2%}",
                         "spend": totals["spend"], "budget used": f"{totals['budget_used']:.1%}",
                         "CPM": f"{totals['cpm']:.2f}", "eCPC": f"{totals['ecpc']:.2f}",
                         "tuned": evaluation.tuned})
    return rows


def format_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    """Fixed-width text table: the two label columns and the last one left-aligned, numbers right-aligned."""
    cells = [list(columns)] + [[str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) if j in (0, 1, len(columns) - 1) else cell.rjust(w)
                               for j, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
                     for line in cells)


@replay_app.command("bidding")
def bidding(
    log: Annotated[list[Path], typer.Option(help="Auction log: rlb-dp episode file or `click price pCTR` lines.")],
    train_info: Annotated[list[Path], typer.Option(help="Training info (info.json or train-info.txt), per log.")],
    budget_ratio: Annotated[str, typer.Option(help="c0: episode budget as a share of the training CPM x T.")]
    = "1/32",
    strategy: Annotated[list[str] | None, typer.Option(help="mcpc, lin, rlb or resolve; all when omitted.")]
    = None,
    tune_log: Annotated[list[Path] | None, typer.Option(
        help="Episodes to tune on, per log; without it, even/odd halves of the log cross-fit.")] = None,
    episode_length: Annotated[int, typer.Option(help="T for flat logs (episode files carry their own).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap over episodes.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Run folder: write bidding.parquet for `adpilot report`.")]
    = None,
) -> None:
    """Replay bidding strategies under the iPinYou protocol of Cai et al. (WSDM 2017) and print the table."""
    from adpilot.measure.replay import STRATEGIES, parse_ratio

    ratio = parse_ratio(budget_ratio, "budget-ratio")
    if episode_length <= 0:
        raise UserError(f"`episode-length` must be > 0, got {episode_length}")
    names = strategy or list(STRATEGIES)
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        raise UserError(f"`strategy` must be one of {', '.join(STRATEGIES)}, got {unknown[0]!r}")
    curves: list[dict] | None = [] if out is not None else None
    rows = bidding_table(log, train_info, ratio, names, tune_log, episode_length, seed, curves)
    typer.echo(f"c0 = {budget_ratio} ({ratio:g}); out of sample: "
               + ("tuned on --tune-log" if tune_log else "tuning strategies cross-fitted on even/odd episodes"))
    typer.echo(format_table(rows))
    if out is not None:
        import sys

        import pandas as pd

        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(curves).to_parquet(out / "bidding.parquet")
        (out / "bidding.command").write_text("adpilot " + " ".join(sys.argv[1:]) + "\n")
        typer.echo(f"curves: {out / 'bidding.parquet'}")


def register(app: typer.Typer) -> None:
    """Mount ``adpilot replay ...``."""
    app.add_typer(replay_app, name="replay")
