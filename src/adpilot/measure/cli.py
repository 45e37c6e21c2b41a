"""``adpilot eval ...``, ``adpilot ab ...`` and ``adpilot report``: the measure room's commands.

Heavy imports stay inside the commands so that ``adpilot --help`` is instant. Every command that prints a figure
also prints the command that reproduces it.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from adpilot.errors import UserError

eval_app = typer.Typer(help="Offline evaluation: targeting policies from bandit logs, recommenders on Coat.",
                       no_args_is_help=True)
ab_app = typer.Typer(help="A/B tests: analyse two arms' event logs, or size a test before it starts.",
                     no_args_is_help=True)


@contextmanager
def _user_errors():
    """Parameter checks (``check_scalar``) raise ValueError naming the parameter: show them as user errors."""
    try:
        yield
    except ValueError as error:
        if str(error).startswith("`"):
            raise UserError(str(error)) from None
        raise


def _reproduce(ctx: typer.Context, skip: tuple[str, ...] = ()) -> str:
    """The full command (every option spelled out, defaults included) that reproduces what was printed."""
    parts = [ctx.command_path]
    for name, value in ctx.params.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] if value else []
        elif value is not None:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


@eval_app.command("policy")
def eval_policy(
    ctx: typer.Context,
    train: Annotated[Path | None, typer.Option(help="Open Bandit-format log (folder or csv) to learn from.")] = None,
    test: Annotated[Path | None, typer.Option(help="Later log of the same campaign to evaluate on.")] = None,
    log: Annotated[Path | None, typer.Option(help="One log, split by time instead of --train/--test.")] = None,
    split: Annotated[float, typer.Option(help="With --log: share of rows (in time order) used for training.")] = 0.5,
    policy: Annotated[str, typer.Option(help="Comma-separated: random, popularity, ipw-learner, reward-model.")] =
    "random,popularity,ipw-learner,reward-model",
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for every interval.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and of the policies.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the table as JSON (e.g. runs/NAME/policy_eval.json).")]
    = None,
) -> None:
    """Learn targeting policies on a log and estimate their click rate on a later log, with 95% intervals."""
    from adpilot.datasets.open_bandit import read_bandit_log
    from adpilot.measure.policy_eval import as_table, evaluate_policies

    if log is not None:
        if train is not None or test is not None:
            raise UserError("give either --log (with --split) or both --train and --test, not both")
        train_log, test_log = read_bandit_log(log).split_by_time(split)
    elif train is not None and test is not None:
        train_log, test_log = read_bandit_log(train), read_bandit_log(test)
    else:
        raise UserError("give both --train and --test logs, or one --log with --split")
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unused = ("split",) if log is None else ()
    with _user_errors():
        logging_value, rows = evaluate_policies(train_log, test_log, names, n_bootstrap=n_bootstrap, random_state=seed)
    typer.echo(f"train: {train_log.n_rounds} rounds, {int(train_log.reward.sum())} clicks | "
               f"test: {test_log.n_rounds} rounds, {int(test_log.reward.sum())} clicks")
    typer.echo(f"logging policy on-policy click rate (test): {logging_value.format(5)}")
    typer.echo(f"{'policy':14s} {'estimator':9s} {'click rate [95% CI]':>30s} {'lift vs logging [95% CI]':>26s}  verdict")
    for row in rows:
        lift = "-" if row.lift is None else row.lift.format(2)
        typer.echo(f"{row.policy:14s} {row.estimator:9s} {row.value.format(5):>30s} {lift:>26s}  {row.verdict}")
    typer.echo("* DR's interval holds its reward model fixed (model uncertainty left out); with few clicks "
               "trust the IPW/SNIPW rows.")
    if int(test_log.reward.sum()) < 100:
        typer.echo(f"note: the test log holds only {int(test_log.reward.sum())} clicks; lifts whose interval "
                   "contains 1 are indistinguishable from the logging policy, whatever their point value.")
    if out is not None:
        from adpilot.measure.runs import write_json

        write_json(out, {"logging_value": logging_value.to_dict(),
                         "rows": as_table(rows).to_dict(orient="records"), "command": _reproduce(ctx, unused)})
        typer.echo(f"wrote {out}")
    typer.echo("reproduce: " + _reproduce(ctx, unused))


@eval_app.command("coat")
def eval_coat(
    ctx: typer.Context,
    train: Annotated[Path, typer.Option(help="Self-selected training ratings (users x items matrix, 0 = missing).")],
    test: Annotated[Path, typer.Option(help="Ratings on uniformly random items, same shape.")],
    propensities: Annotated[Path | None, typer.Option(help="Propensity matrix, same shape (enables ips-mf).")] = None,
    model: Annotated[str, typer.Option(help="Comma-separated: random, popularity, mf, ips-mf.")] =
    "random,popularity,mf,ips-mf",
    k: Annotated[int, typer.Option(help="Cut-off of precision@k and NDCG@k.")] = 5,
    threshold: Annotated[float, typer.Option(help="A test rating >= threshold is a positive.")] = 4.0,
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples (over users).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of models, tie-breaking and bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the table as JSON (e.g. runs/NAME/coat.json).")] = None,
) -> None:
    """Train targeting models on MNAR ratings; precision@k, NDCG@k and AUC with 95% intervals on random test."""
    from adpilot.measure.coat import evaluate, read_matrix

    models = tuple(m.strip() for m in model.split(",") if m.strip())
    if "ips-mf" in models and propensities is None:
        raise UserError("model ips-mf needs --propensities (or leave it out of --model)")
    with _user_errors():
        table = evaluate(read_matrix(train, "train"), read_matrix(test, "test"),
                         None if propensities is None else read_matrix(propensities, "propensities"),
                         models=models, k=k, threshold=threshold, n_bootstrap=n_bootstrap, random_state=seed)
    columns = {"precision": f"precision@{k}", "ndcg": f"ndcg@{k}", "auc": "auc",
               "ndcg_lift_vs_popularity": f"ndcg@{k} / popularity"}
    present = [c for c in columns if c in table.columns]
    typer.echo(f"{'model':12s} " + " ".join(f"{columns[c] + ' [95% CI]':>26s}" for c in present))
    rows = []
    for _, row in table.iterrows():
        typer.echo(f"{row['model']:12s} " + " ".join(f"{row[c].format(3):>26s}" for c in present))
        rows.append({"model": row["model"]} | {f"{columns[c]}{suffix}": getattr(row[c], attr)
                                                for c in present for suffix, attr in
                                                (("", "estimate"), ("_lower", "lower"), ("_upper", "upper"))})
    if out is not None:
        from adpilot.measure.runs import write_json

        write_json(out, {"rows": rows, "k": k, "threshold": threshold, "command": _reproduce(ctx)})
        typer.echo(f"wrote {out}")
    typer.echo("reproduce: " + _reproduce(ctx))


def report(
    run: Annotated[Path, typer.Argument(help="Run folder holding result files (runs/<name>/).")],
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
) -> None:
    """Write a self-contained HTML report (plots embedded, PNGs beside it) of a run folder; print its path."""
    from adpilot.measure.report import build_report

    page, pngs = build_report(run, title)
    typer.echo(f"{len(pngs)} plot(s) written beside the report")
    typer.echo(str(page))


@ab_app.command("analyze")
def ab_analyze(
    ctx: typer.Context,
    a: Annotated[Path, typer.Option("--a", help="Arm A (control) export: event log or per-user table, CSV/Parquet.")],
    b: Annotated[Path, typer.Option("--b", help="Arm B (treatment) export, same format as --a.")],
    planned_n: Annotated[int | None, typer.Option(help="Planned impressions per arm; warns when analysed earlier.")]
    = None,
    experiment_start: Annotated[str | None, typer.Option(help="Event logs: events before this time form the "
                                                               "pre-period used by CUPED (ISO time).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the Monte Carlo and bootstrap.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Also write the result as JSON (e.g. runs/NAME/ab.json).")] = None,
) -> None:
    """Compare two arms: CTR, CVR, RPM with 95% intervals, z-test, P(B better), CUPED, and warnings."""
    import pandas as pd

    from adpilot.measure.ab import analyze, read_arm

    start = None
    if experiment_start is not None:
        try:
            start = pd.Timestamp(experiment_start, tz="UTC") if pd.Timestamp(experiment_start).tz is None \
                else pd.Timestamp(experiment_start)
        except ValueError:
            raise UserError(f"`experiment_start` must be an ISO time, got {experiment_start!r}") from None
    with _user_errors():
        result = analyze(read_arm(a, start), read_arm(b, start), planned_n=planned_n, seed=seed)
    typer.echo(result.totals.to_string(float_format=lambda v: f"{v:,.0f}"))
    for rate in result.rates:
        typer.echo(f"{rate.metric}: A {rate.a.format(4)}  B {rate.b.format(4)}  lift {rate.relative_lift:+.1%}  "
                   f"z={rate.z:.2f} p={rate.p_value:.4f}  P(B>A)={rate.prob_b_better:.3f}")
    if result.rpm is not None:
        typer.echo(f"RPM: A {result.rpm[0].format(2)}  B {result.rpm[1].format(2)}")
    if result.cuped is not None:
        c = result.cuped
        typer.echo(f"CUPED ({c['metric']}, covariate {c['covariate']}): B-A {c['difference'].format(4)} "
                   f"p={c['p_value']:.4f}, variance reduced by {c['variance_reduction']:.0%}")
    for warning in result.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW)
    if out is not None:
        from dataclasses import asdict

        from adpilot.measure.runs import write_json

        write_json(out, {"totals": result.totals.reset_index(names="arm").to_dict(orient="records"),
                         "rates": [asdict(r) for r in result.rates],
                         "rpm": None if result.rpm is None else [i.to_dict() for i in result.rpm],
                         "cuped": None if result.cuped is None else {**result.cuped,
                                                                      "difference": c["difference"].to_dict()},
                         "warnings": result.warnings, "command": _reproduce(ctx)})
        typer.echo(f"wrote {out}")
    typer.echo("reproduce: " + _reproduce(ctx))


@ab_app.command("size")
def ab_size(
    baseline: Annotated[float, typer.Option(help="Baseline rate, e.g. CTR 0.02.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect, relative (0.1 = +10%) unless --absolute.")],
    absolute: Annotated[bool, typer.Option(help="Read --mde as an absolute difference in rate.")] = False,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Power.")] = 0.8,
) -> None:
    """Impressions (trials) needed per arm to detect the effect with a two-proportion z-test."""
    from adpilot.measure.ab import sample_size

    with _user_errors():
        n = sample_size(baseline, mde, relative=not absolute, alpha=alpha, power=power)
    target = baseline + mde if absolute else baseline * (1 + mde)
    typer.echo(f"{n:,} per arm ({2 * n:,} in total) to detect {baseline:g} -> {target:g} "
               f"at alpha={alpha:g}, power={power:g}")


def register(app: typer.Typer) -> None:
    """Mount ``eval``, ``ab`` and ``report`` (and the replay commands when that module exists).

    ``eval`` is shared with the rank room: when a group of that name is already mounted, our commands join it.
    """
    existing = next((g for g in app.registered_groups if g.name == "eval"), None)
    if existing is not None and existing.typer_instance is not None:
        existing.typer_instance.registered_commands.extend(eval_app.registered_commands)
    else:
        app.add_typer(eval_app, name="eval")
    app.add_typer(ab_app, name="ab")
    app.command("report")(report)
    import importlib

    try:
        cli_replay = importlib.import_module("adpilot.measure.cli_replay")
    except ModuleNotFoundError as missing:
        if missing.name != "adpilot.measure.cli_replay":
            raise
    else:
        cli_replay.register(app)
