"""``adpilot train ctr``, ``adpilot train export`` and ``adpilot eval ctr``. Heavy imports (torch) happen inside the
commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from adpilot.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

train_app = typer.Typer(help="Train models.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models.", no_args_is_help=True)


@train_app.callback()
def _train_group() -> None:
    """Train models (a group even with one command, so `train ctr` keeps its name)."""


@eval_app.callback()
def _eval_group() -> None:
    """Evaluate models."""


def _labels(label: str | None) -> tuple[str, ...] | None:
    return tuple(s.strip() for s in label.split(",") if s.strip()) if label else None


@train_app.command("ctr")
def train_ctr(
    train: Annotated[Path, typer.Option(help="Training file: CSV/TSV, Parquet, libFM, S3-Rec .txt(.gz), ReChorus.")],
    model: Annotated[str, typer.Option(help="lr | deepfm | dcnv2 | din | bst | esmm | escm2")] = "dcnv2",
    valid: Annotated[Path | None, typer.Option(help="Validation file (default: held out from --train).")] = None,
    out: Annotated[Path, typer.Option(help="Model file to write (.npz).")] = Path("ctr_model.npz"),
    label: Annotated[str | None, typer.Option(help="Label column; esmm/escm2 take 'click,conversion'.")] = None,
    drop: Annotated[str, typer.Option(help="Comma-separated columns not to use as features.")] = "",
    epochs: int = 10,
    batch_size: int = 1024,
    learning_rate: Annotated[float | None, typer.Option(help="Adam step (default: the model's own).")] = None,
    embedding_dim: int = 16,
    embedding_l2: float = 0.0,
    cross_rank: Annotated[int, typer.Option(help="dcnv2: rank of the cross matrices (0 = full).")] = 32,
    attention_heads: Annotated[int, typer.Option(help="bst: self-attention heads over the history.")] = 2,
    patience: int = 2,
    calibration: Annotated[str, typer.Option(help="platt | isotonic | none")] = "platt",
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Train a CTR/CVR model with early stopping on validation AUC, calibrate it, and save it."""
    from adpilot.measure.metrics import ece
    from adpilot.rank.calibration import calibrate_heads, cvr_tower
    from adpilot.rank.estimator import CTRModel
    from adpilot.rank.metrics import ECE_BINS

    estimator = CTRModel(model, labels=_labels(label), drop=tuple(d for d in drop.split(",") if d),
                         epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         embedding_dim=embedding_dim, embedding_l2=embedding_l2, cross_rank=cross_rank,
                         attention_heads=attention_heads,
                         patience=patience,
                         calibration=calibration, seed=seed, threads=threads)
    estimator.fit(train, valid)
    path = estimator.save(out)
    result = estimator.result_
    typer.echo(f"model {model}: features {estimator.spec_.columns()}")
    for row in result.history:
        typer.echo(f"epoch {row['epoch']}: train loss {row['train_loss']:.5f}, valid AUC {row['valid_auc']:.4f}")
    typer.echo(f"best epoch {result.best_epoch} (valid AUC {result.best_auc:.4f})")
    if hasattr(estimator, "valid_report_"):
        raw, y = estimator.valid_report_["raw"], estimator.valid_report_["labels"]
        calibrated = calibrate_heads(estimator.calibrators_, raw)
        for h in range(raw.shape[1]):
            typer.echo(f"valid ECE `{estimator.labels_[h]}`: raw {ece(y[:, h], raw[:, h], ECE_BINS):.5f}, "
                       f"{calibration} {ece(y[:, h], calibrated[:, h], ECE_BINS):.5f}")
        clicked = y[:, 0] > 0.5
        if raw.shape[1] == 2 and clicked.any():
            pcvr = cvr_tower(raw[clicked])
            typer.echo(f"valid pCVR on {int(clicked.sum())} clicked rows: conversion rate {y[clicked, 1].mean():.5f}, "
                       f"mean raw {pcvr.mean():.5f}, {calibration} {estimator.calibrators_[1].apply(pcvr).mean():.5f}")
    typer.echo(f"saved {path}")


@train_app.command("export")
def train_export(
    out: Annotated[Path, typer.Option(help="Folder for train.parquet (and test.parquet with --test-days).")],
    encoder: Annotated[str, typer.Option(help="Whose product vectors become ad_vec / hist_vec.")] = "e5",
    test_days: Annotated[float, typer.Option(help="Hold out the impressions of the last N days as test.parquet.")] = 0,
    max_history: Annotated[int, typer.Option(help="Products kept in each row's history.")] = 50,
    store: Annotated[Path | None, typer.Option(help="Store file (default from settings).")] = None,
) -> None:
    """Write the store's logged impressions, labelled with clicks and conversions, under the names the serving
    engine passes to a scorer, so `train ctr --train OUT/train.parquet` makes a model `serve` can use."""
    from adpilot.config import get_settings
    from adpilot.rank.store_export import export_training
    from adpilot.store import Store

    with Store(store or get_settings().resolved_store_path) as opened:
        written = export_training(opened, out, encoder, test_days, max_history)
    for name, rows in written.items():
        typer.echo(f"{out / (name + '.parquet')}: {rows:,} impressions")


@eval_app.command("ctr")
def eval_ctr(
    model: Annotated[Path, typer.Option(help="Model file written by `adpilot train ctr`.")],
    test: Annotated[Path, typer.Option(help="Test file, in any format `train ctr` reads.")],
    label: Annotated[str | None, typer.Option(help="Label column(s), if not the ones trained on.")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals.")] = 200,
    seed: int = 0,
) -> None:
    """Print AUC, log loss, gAUC (per user, when the file has users) and ECE, each with a 95% interval."""
    from adpilot.rank.estimator import CTRModel, label_matrix
    from adpilot.rank.metrics import report
    from adpilot.rank.readers import open_source

    if n_boot < 10:
        raise UserError(f"`n_boot` must be >= 10, got {n_boot}")
    estimator = CTRModel.load(model)
    source = open_source(test, "test", _labels(label) or estimator.labels_, estimator.seed)
    probs = estimator.predict_heads(source)
    frames = list(source.frames())
    y = label_matrix(_concat(frames), source.labels)
    groups = _concat(frames)[source.group].to_numpy() if source.group else None
    typer.echo(f"model {model} on {test}: {len(y)} rows (95% intervals: bootstrap, {n_boot} resamples"
               f"{', by user' if groups is not None else ''})")
    heads = ("pCTR", "pCTCVR") if probs.shape[1] == 2 else ("p",)
    for h, name in enumerate(heads):
        typer.echo(f"{name} vs `{source.labels[h]}` (positives {int(y[:, h].sum())}):")
        for metric, value in report(y[:, h], probs[:, h], groups, n_boot, seed).items():
            typer.echo(f"  {metric:8s} {value}")


def _concat(frames: list) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames) if frames else pd.DataFrame()


def register(app: typer.Typer) -> None:
    """Mount ``train ctr`` and ``eval ctr``; if another room already has a ``train``/``eval`` group, add the
    commands to it instead of shadowing it."""
    for name, group in (("train", train_app), ("eval", eval_app)):
        existing = next((g for g in app.registered_groups if g.name == name), None)
        if existing is not None and existing.typer_instance is not None:
            existing.typer_instance.registered_commands.extend(group.registered_commands)
        else:
            app.add_typer(group, name=name)
