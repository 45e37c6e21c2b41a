"""``adpilot deliver decide``: one decision from the store, printed as JSON (with ``--explain``, the reasons)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

deliver_app = typer.Typer(help="The decision engine: decide one ad request on a snapshot of the store.",
                          no_args_is_help=True)


@deliver_app.command("decide")
def decide(
    slot: Annotated[str, typer.Option(help="Ad slot of the request.")],
    user: Annotated[str | None, typer.Option(help="Pseudonymous user id (omit for an anonymous request).")] = None,
    query: Annotated[str | None, typer.Option(help="Search query text.")] = None,
    page: Annotated[str | None, typer.Option(help="Page: a product id or page text.")] = None,
    device: Annotated[str | None, typer.Option(help="Device type, e.g. mobile.")] = None,
    geo: Annotated[str | None, typer.Option(help="Coarse location, e.g. 上海.")] = None,
    n_ads: Annotated[int, typer.Option(help="How many ads to place (1-20).")] = 1,
    explain: Annotated[bool, typer.Option(help="Include which filters removed whom, scores and prices.")] = False,
    scorer: Annotated[Path | None, typer.Option(help="Scorer file (default: ADPILOT_SCORER_PATH).")] = None,
    store: Annotated[Path | None, typer.Option(help="DuckDB store (default: the configured store).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the engine's random draws.")] = 0,
) -> None:
    """Build a snapshot from the store and print the decision for one request as JSON."""
    import uuid

    from pydantic import ValidationError

    from adpilot.config import get_settings
    from adpilot.deliver.engine import DecisionEngine
    from adpilot.deliver.scorer import load_scorer
    from adpilot.deliver.snapshot import Snapshot
    from adpilot.errors import UserError
    from adpilot.schema import AdRequest
    from adpilot.store.db import Store
    from adpilot.understand.registry import get_encoder

    settings = get_settings()
    scorer_path = scorer if scorer is not None else getattr(settings, "scorer_path", None)
    if scorer_path is None:
        raise UserError("give --scorer (or set ADPILOT_SCORER_PATH) to a trained scorer file")
    store_path = store if store is not None else settings.resolved_store_path
    if not Path(store_path).exists():
        raise UserError(f"store {store_path} does not exist: ingest data first (see `adpilot --help`)")
    try:
        request = AdRequest(request_id=f"cli-{uuid.uuid4().hex[:12]}", user_id=user, slot=slot, query=query,
                            page=page, device=device, geo=geo, n_ads=n_ads, explain=explain)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"`{first['loc'][0]}` {first['msg'].lower()}") from error
    with Store(store_path, read_only=True) as db:
        snapshot = Snapshot.from_store(db, load_scorer(scorer_path), get_encoder(settings.encoder, settings))
    decision = DecisionEngine(snapshot, settings=settings, seed=seed).decide(request)
    typer.echo(json.dumps(decision.model_dump(mode="json"), ensure_ascii=False, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(deliver_app, name="deliver")
