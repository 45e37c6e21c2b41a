"""``adpilot profile|segments|audience|anomalies``: the understand room's commands (heavy imports inside)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from adpilot.errors import InputFileError, UserError

StoreOpt = Annotated[Path | None, typer.Option("--store", help="DuckDB store (default: settings.store_path)")]
EncoderOpt = Annotated[str | None, typer.Option("--encoder", help="e5 | use | openai (default: settings.encoder)")]

profile = typer.Typer(help="Build, update and read user profiles.", no_args_is_help=True)
segments = typer.Typer(help="Cluster profiled users into described segments.", no_args_is_help=True)
audience = typer.Typer(help="Audiences from profiles: look-alikes.", no_args_is_help=True)


def _open(store: Path | None):
    from adpilot.config import get_settings
    from adpilot.store import Store

    path = store or get_settings().resolved_store_path
    if not Path(path).exists():
        raise UserError(f"store {path} does not exist: ingest data first or pass --store")
    return Store(path)


@profile.command("build")
def profile_build(store: StoreOpt = None, encoder: EncoderOpt = None,
                  half_life_days: Annotated[float, typer.Option(help="decay half-life of interests")] = 30.0) -> None:
    """Embed the catalogue (cached) and rebuild every profile."""
    from adpilot.config import get_settings
    from adpilot.understand.items import build_product_vectors
    from adpilot.understand.profiles import build_profiles
    from adpilot.understand.registry import get_encoder

    enc = get_encoder(encoder, get_settings())
    with _open(store) as s:
        n_products = build_product_vectors(s, enc)
        n_users = build_profiles(s, enc, half_life_days=half_life_days)
    typer.echo(f"{n_products} product vectors ({enc.name}), {n_users} profiles")


@profile.command("update")
def profile_update(store: StoreOpt = None, encoder: EncoderOpt = None) -> None:
    """Fold events newer than the profiles' as_of into them, without a rebuild."""
    from adpilot.config import get_settings
    from adpilot.understand.profiles import update_profiles
    from adpilot.understand.registry import get_encoder

    with _open(store) as s:
        typer.echo(f"{update_profiles(s, get_encoder(encoder, get_settings()))} profiles updated")


@profile.command("show")
def profile_show(user: Annotated[str, typer.Argument(help="raw user id (pseudonymised here) or stored id")],
                 store: StoreOpt = None) -> None:
    """Print one user's profile as a readable card."""
    from adpilot.config import get_settings
    from adpilot.store.privacy import pseudonymise
    from adpilot.understand.card import profile_card

    with _open(store) as s:
        typer.echo(profile_card(s, [pseudonymise(user, get_settings().secret), user]))


@segments.command("build")
def segments_build(store: StoreOpt = None, k_min: int = 4, k_max: int = 16, seed: int = 0) -> None:
    """Choose k by silhouette, cluster, describe and store segments."""
    from adpilot.understand.segments import build_segments

    with _open(store) as s:
        result = build_segments(s, k_range=(k_min, k_max), random_state=seed)
    typer.echo(f"k = {result.k} (silhouette by k: " + ", ".join(f"{k}: {v:.3f}" for k, v in result.silhouettes.items())
               + ")")
    typer.echo(result.table.to_string(index=False))


@segments.command("show")
def segments_show(store: StoreOpt = None) -> None:
    """List stored segments."""
    with _open(store) as s:
        s.con.execute("CREATE TABLE IF NOT EXISTS segments (segment_id INTEGER PRIMARY KEY, description VARCHAR, "
                      "size BIGINT, centroid FLOAT[])")
        frame = s.con.sql("SELECT segment_id, description, size FROM segments ORDER BY size DESC").df()
    typer.echo(frame.to_string(index=False) if len(frame) else "no segments: run `adpilot segments build`")


@audience.command("lookalike")
def audience_lookalike(seed_file: Annotated[Path, typer.Option(help="one stored user id per line")],
                       n: Annotated[int, typer.Option(help="audience size")] = 1000,
                       threshold: Annotated[float, typer.Option(help="minimum cosine")] = 0.5,
                       store: StoreOpt = None) -> None:
    """Print the N users most similar to the seeds (user_id, similarity) as CSV."""
    from adpilot.understand.lookalike import lookalike

    if not seed_file.is_file():
        raise InputFileError(f"`--seed-file` {seed_file} does not exist")
    seeds = [line.strip() for line in seed_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not seeds:
        raise InputFileError(f"`--seed-file` {seed_file} holds no user ids")
    if n < 1:
        raise UserError(f"`--n` must be >= 1, got {n}")
    if not -1 <= threshold <= 1:
        raise UserError(f"`--threshold` must be in [-1, 1], got {threshold}")
    with _open(store) as s:
        typer.echo(lookalike(s, seeds, n, threshold).to_csv(index=False), nl=False)


def anomalies(store: StoreOpt = None,
              talkingdata: Annotated[Path | None, typer.Option(help="evaluate on a TalkingData clicks CSV")] = None,
              contamination: float = 0.02, seed: int = 0) -> None:
    """Flag implausible users in the store, or evaluate the flags on a TalkingData click file."""
    from adpilot.understand.anomalies import AnomalyDetector, flag_users

    detector = AnomalyDetector(contamination=contamination, random_state=seed)
    if talkingdata is not None:
        from adpilot.understand.anomaly_eval import evaluate_talkingdata

        typer.echo(json.dumps(evaluate_talkingdata(talkingdata, detector), indent=2, default=str))
        return
    with _open(store) as s:
        flagged = flag_users(s, detector)
    shown = flagged[flagged["flagged"]].sort_values("score", ascending=False)
    typer.echo(f"{len(shown)} of {len(flagged)} users flagged")
    typer.echo(shown[["source", "score", "reasons"]].head(50).to_string(index=False))


def register(app: typer.Typer) -> None:
    app.add_typer(profile, name="profile")
    app.add_typer(segments, name="segments")
    app.add_typer(audience, name="audience")
    app.command("anomalies")(anomalies)
