"""``adpilot world`` writes a synthetic e-commerce world; ``adpilot datasets export`` turns a public set into
adpilot records (Parquet) ready for ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def world(
    out: Annotated[Path, typer.Option(help="Folder to write the world into (created).")],
    users: Annotated[int, typer.Option(help="Number of users.")] = 5_000,
    events: Annotated[int, typer.Option(help="Number of behaviour and ad events.")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same world.")] = 0,
    days: Annotated[int, typer.Option(help="Days the events span.")] = 30,
    products: Annotated[int | None, typer.Option(help="Catalogue size (default: users // 16, 300..100k).")] = None,
) -> None:
    """Generate a deterministic synthetic shop (catalogue, users, advertisers, events, truth) as Parquet."""
    from adpilot.datasets.world import WorldConfig, write_world

    stats = write_world(out, WorldConfig(n_users=users, n_events=events, seed=seed, n_days=days,
                                         n_products=products))
    rate = stats.n_events / stats.seconds_events if stats.seconds_events > 0 else float("nan")
    typer.echo(f"wrote {stats.n_events:,} events, {stats.n_users:,} users, {stats.n_products:,} products, "
               f"{stats.n_ads:,} ads to {stats.out} ({stats.seconds_events:.1f} s of events, {rate:,.0f} events/s)")


datasets_app = typer.Typer(help="Public data sets: export them as adpilot records.", no_args_is_help=True)


@datasets_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="talkingdata, taobao, chinese_reviews, womens_reviews, amazon_grocery, "
                                             "amazon_beauty or amazon_sports.")],
    out: Annotated[Path, typer.Option(help="Folder for events.parquet (+ products.parquet).")],
    path: Annotated[Path | None, typer.Option(help="Source file or folder (default: under ADPILOT_SHARED_DATA).")
                    ] = None,
) -> None:
    """Write a public set's events (and products) in adpilot's Arrow schemas."""
    from adpilot.datasets.export import export_records

    for file, rows in export_records(name, out, path).items():
        typer.echo(f"wrote {rows:,} rows to {out / file}")


def register(app: typer.Typer) -> None:
    """Mount ``adpilot world`` and ``adpilot datasets`` on the main app."""
    app.command("world")(world)
    app.add_typer(datasets_app, name="datasets")
