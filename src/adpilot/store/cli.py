"""``adpilot ingest``, ``adpilot stats`` and ``adpilot quarantine show``: the store from the command line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adpilot.errors import UserError

if TYPE_CHECKING:
    from adpilot.store.db import Store


class KindChoice(StrEnum):
    events = "events"
    products = "products"
    users = "users"
    advertisers = "advertisers"
    campaigns = "campaigns"
    ads = "ads"
    creatives = "creatives"


StoreOption = Annotated[
    Path | None, typer.Option("--store", help="DuckDB file (default: the settings' store path, ADPILOT_STORE_PATH).")
]


def _open(store: Path | None, read_only: bool = False) -> Store:
    """The store at ``store`` (or the configured one); a missing or locked file is a user error."""
    import duckdb

    from adpilot.config import get_settings
    from adpilot.store.db import Store

    path = store or get_settings().resolved_store_path
    if read_only and not Path(path).exists():
        raise UserError(f"no store at {path}; run `adpilot ingest` first or pass --store")
    try:
        return Store(path, read_only=read_only)
    except duckdb.IOException as error:
        raise UserError(f"cannot open the store {path}: {str(error).splitlines()[0]}") from error


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="CSV, TSV, JSONL or Parquet files.", show_default=False)],
    kind: Annotated[KindChoice | None, typer.Option(help="What the files hold (default: inferred from columns).")] = None,
    store: StoreOption = None,
) -> None:
    """Validate, clean, pseudonymise and de-duplicate files into the store; rejected rows go to quarantine."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from adpilot.store.ingest import checked_settings, ingest_file

    checked_settings()
    console = Console()
    table = Table("file", "kind", "read", "accepted", "quarantined", "duplicates", "flagged", "notes")
    with _open(store) as db:
        for path in paths:
            with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task(f"ingesting {path.name}", total=None)

                def progress(done: int, total: int | None, bar: Progress = bar, task: TaskID = task) -> None:
                    bar.update(task, completed=done, total=total)

                report = ingest_file(db, path, kind=kind.value if kind else None, progress=progress)
            table.add_row(path.name, report.kind, f"{report.rows_read:,}", f"{report.accepted:,}",
                          f"{report.quarantined:,}", f"{report.duplicates:,}", f"{report.flagged:,}",
                          "; ".join(report.notes))
    console.print(table)


def stats(store: StoreOption = None) -> None:
    """Rows per table, the events' date range, and the quarantine summarised by reason."""
    from rich.console import Console
    from rich.table import Table

    from adpilot.store.queries import quarantine_summary, table_counts

    console = Console()
    with _open(store, read_only=True) as db:
        counts = Table("table", "rows", title="store " + db.path)
        for name, rows in table_counts(db).items():
            counts.add_row(name, f"{rows:,}")
        console.print(counts)
        span = db.con.execute("SELECT min(ts), max(ts), count(*) FILTER (WHERE bot_flag) FROM events").fetchone()
        if span and span[0] is not None:
            console.print(f"events from {span[0]:%Y-%m-%d %H:%M} to {span[1]:%Y-%m-%d %H:%M} UTC; "
                          f"{span[2]:,} flagged as bot-like")
        reasons = Table("reason", "rows", "kind", title="quarantine by reason")
        for reason, kind, rows in quarantine_summary(db):
            reasons.add_row(reason, f"{rows:,}", kind)
        console.print(reasons)


def show(
    reason: Annotated[str | None, typer.Option(help="Only rows whose reason contains this text.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 20,
    store: StoreOption = None,
) -> None:
    """Quarantined rows: file, row number, reason and the raw content as read."""
    from rich.console import Console
    from rich.table import Table

    from adpilot.store.queries import quarantined_rows

    table = Table("file", "row", "reason", "raw")
    with _open(store, read_only=True) as db:
        for source, row, why, raw in quarantined_rows(db, reason=reason, limit=limit):
            table.add_row(Path(source).name, str(row), why, (raw or "")[:120])
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Mount the store's commands on the main app."""
    app.command("ingest")(ingest)
    app.command("stats")(stats)
    quarantine = typer.Typer(help="Look at rows refused by ingestion.", no_args_is_help=True)
    quarantine.command("show")(show)
    app.add_typer(quarantine, name="quarantine")
