"""The ``adpilot`` command: one Typer app, a sub-command group per room.

Each room keeps its commands in ``<room>/cli.py`` and imports its heavy dependencies inside the command, so that
``adpilot --help`` stays instant. A :class:`~adpilot.errors.UserError` anywhere becomes one red line and exit 2.
"""

from __future__ import annotations

import sys

import typer

from adpilot.errors import UserError

app = typer.Typer(
    name="adpilot",
    help="Precision ad targeting for e-commerce, driven by pretrained language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print adpilot's version."""
    from adpilot import __version__

    typer.echo(__version__)


@app.command()
def demo(
    home: str = typer.Option("data/demo", help="Folder for the demo's world, store, models and report."),
    users: int = typer.Option(5_000, min=100, help="Synthetic shoppers."),
    events: int = typer.Option(200_000, min=1_000, help="Behaviour events to generate."),
    seed: int = typer.Option(0, help="Seed of the world and of every model."),
    encoder: str = typer.Option("use", help="Text encoder: use (fast, the demo's choice), e5 or openai."),
) -> None:
    """Run the main job end to end on a synthetic shop: world → ingest → profiles → segments → train →
    creatives → simulate → report; prints the summary table and the report's path."""
    from pathlib import Path

    from adpilot.config import Settings
    from adpilot.pipeline import DemoConfig, print_summary, run_demo

    settings = Settings.model_validate({"mode": "demo", "encoder": encoder})
    result = run_demo(DemoConfig(home=Path(home), users=users, events=events, seed=seed), settings, echo=typer.echo)
    print_summary(result, echo=typer.echo)


@app.command()
def simulate(
    home: str = typer.Option("data/demo", help="A folder `adpilot demo` filled: world/, adpilot.duckdb, models/."),
    days: int = typer.Option(2, min=1, help="Simulated days (the world's last ones)."),
    requests: int = typer.Option(4_000, min=1, help="Ad requests per day, identical for every policy."),
    seed: int = typer.Option(0, help="Seed of the traffic and of the engine's draws."),
    encoder: str = typer.Option("use", help="The encoder the store's vectors were built with."),
) -> None:
    """Run days of synthetic traffic through the decision engine for untargeted, popularity, rule targeting and
    adpilot's full path, with true click and conversion probabilities; print CTR, CVR, ROI and lift."""
    import json
    from pathlib import Path

    from adpilot.config import Settings
    from adpilot.errors import UserError
    from adpilot.pipeline import DemoConfig, print_summary, simulate_step
    from adpilot.store import Store

    root = Path(home)
    world_config = root / "world" / "truth" / "world.json"
    if not world_config.is_file() or not (root / "models" / "scorer.json").is_file():
        raise UserError(f"{root} has no world and trained scorer: run `adpilot demo --home {root}` first")
    n_days = int(json.loads(world_config.read_text()).get("n_days", 30))
    config = DemoConfig(home=root, days=n_days, seed=seed, sim_days=days, sim_requests_per_day=requests)
    results: dict[str, object] = {}
    with Store(root / "adpilot.duckdb") as store:
        typer.echo(simulate_step(store, Settings.model_validate({"mode": "demo", "encoder": encoder}), config,
                                 root / "models" / "scorer.json", results)())
    print_summary(results, echo=typer.echo)


ROOMS = ("datasets", "store", "understand", "measure", "rank", "create", "deliver", "serve")  # measure first: rank adds `eval ctr` to its `eval` group


def _mount() -> None:
    """Attach every room's commands: each ``adpilot.<room>.cli`` module has ``register(app)``."""
    import importlib

    for room in ROOMS:
        try:
            module = importlib.import_module(f"adpilot.{room}.cli")
        except ModuleNotFoundError as missing:
            if missing.name != f"adpilot.{room}.cli":
                raise
            continue
        module.register(app)


def main() -> None:
    """Entry point: run the app and turn user errors into one line and exit code 2."""
    from pydantic import ValidationError

    _mount()
    try:
        app()
    except UserError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except ValidationError as error:  # a setting or record built from the user's values
        problems = "; ".join(f"`{'.'.join(map(str, e['loc']))}` {e['msg']}" for e in error.errors())
        typer.secho(f"error: {problems}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
