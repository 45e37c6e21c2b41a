"""The report's plots: each function takes plain DataFrames/arrays (other rooms produce them) and returns a Figure.

Matplotlib runs on the Agg backend (no display). Chinese labels need a CJK font; when none is installed
(``fc-list :lang=zh`` is empty) labels with CJK characters are replaced by ASCII stand-ins (``label 3``) so no
glyph turns into a box — the HTML tables beside the plots keep the original text.
"""

from __future__ import annotations

import re
from functools import lru_cache, wraps

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from adpilot.errors import UserError  # noqa: E402
from adpilot.measure.metrics import calibration_table  # noqa: E402

_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                 "SimHei", "Microsoft YaHei", "PingFang SC", "Source Han Sans SC", "AR PL UMing CN")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The first installed font family that has Chinese glyphs, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((family for family in _CJK_FAMILIES if family in installed), None)


def safe_labels(labels: list[str], prefix: str = "label") -> list[str]:
    """``labels`` unchanged when they can be drawn; CJK labels become ``prefix i`` when no CJK font exists.

    >>> safe_labels(["men", "women"])
    ['men', 'women']
    """
    if cjk_font() is not None or not any(_CJK.search(str(label)) for label in labels):
        return [str(label) for label in labels]
    return [f"{prefix} {i}" if _CJK.search(str(label)) else str(label) for i, label in enumerate(labels)]


def _with_font(plot):
    """Draw with a CJK-capable font first in the family list when one is installed (no global rc change)."""

    @wraps(plot)
    def wrapper(*args, **kwargs):
        font = cjk_font()
        families = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
        with matplotlib.rc_context({"font.sans-serif": families, "font.family": "sans-serif"}):
            return plot(*args, **kwargs)

    return wrapper


def _figure(width: float = 7.0, height: float = 4.2) -> tuple[Figure, plt.Axes]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, alpha=0.3)
    return fig, ax


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{what} data lacks the column(s) {missing}")
    if frame.empty:
        raise UserError(f"{what} data is empty")


@_with_font
def lift_by_policy(frame: pd.DataFrame, baseline: float | None = None, title: str = "Policy value",
                   ylabel: str = "value", baseline_label: str = "baseline") -> Figure:
    """Bars of ``value`` per ``policy`` with ``[lower, upper]`` error bars; grouped by ``metric`` if present."""
    _require(frame, ("policy", "value", "lower", "upper"), "lift")
    frame = frame.assign(metric=frame["metric"] if "metric" in frame.columns else ylabel)
    metrics = list(dict.fromkeys(frame["metric"]))
    policies = list(dict.fromkeys(frame["policy"]))
    fig, ax = _figure()
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        part = frame[frame["metric"] == metric].set_index("policy").reindex(policies)
        x = np.arange(len(policies)) + (j - (len(metrics) - 1) / 2) * width
        errors = np.vstack([part["value"] - part["lower"], part["upper"] - part["value"]]).clip(min=0)
        ax.bar(x, part["value"], width, yerr=errors, capsize=4, label=str(metric), alpha=0.85)
    if baseline is not None:
        ax.axhline(baseline, color="black", linestyle="--", linewidth=1, label=baseline_label)
    ax.set_xticks(np.arange(len(policies)), safe_labels(policies, "policy"), rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} (bars: 95% intervals)")
    if len(metrics) > 1 or baseline is not None:
        ax.legend()
    return fig


@_with_font
def pacing_curves(frame: pd.DataFrame) -> Figure:
    """Cumulative spend (solid) against the plan (dashed) by hour, one colour per ``campaign``."""
    _require(frame, ("campaign", "hour", "spend", "plan"), "pacing")
    fig, ax = _figure()
    campaigns = list(dict.fromkeys(frame["campaign"]))
    for label, campaign in zip(safe_labels(campaigns, "campaign"), campaigns, strict=True):
        part = frame[frame["campaign"] == campaign].sort_values("hour")
        line, = ax.plot(part["hour"], part["spend"].cumsum(), label=f"{label} spend")
        ax.plot(part["hour"], part["plan"].cumsum(), linestyle="--", color=line.get_color(), label=f"{label} plan")
    ax.set_xlabel("hour")
    ax.set_ylabel("cumulative spend")
    ax.set_title("Budget pacing: spend vs plan")
    ax.legend(fontsize=8, ncol=2)
    return fig


@_with_font
def calibration_plot(labels: np.ndarray, pctr: np.ndarray, n_bins: int = 10) -> Figure:
    """Observed click rate against mean pCTR per equal-count bin, with the diagonal."""
    table = calibration_table(labels, pctr, n_bins, strategy="quantile")
    fig, ax = _figure(5.5, 5.0)
    top = float(max(table["predicted"].max(), table["observed"].max()) * 1.1) or 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    ax.plot(table["predicted"], table["observed"], marker="o", label=f"model ({n_bins} equal-count bins)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted CTR")
    ax.set_ylabel("observed CTR")
    ax.set_title(f"Calibration of pCTR ({len(labels):,} impressions)")
    ax.legend()
    return fig


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (via SVD of the centred matrix), shape (n, d) -> (n, 2)."""
    vectors = np.asarray(vectors, dtype=float)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise UserError(f"a segment map needs at least two vectors, got shape {vectors.shape}")
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.c_[out, np.zeros((out.shape[0], 2 - out.shape[1]))]


@_with_font
def segment_map(frame: pd.DataFrame, max_points: int = 5000, random_state: int = 0) -> Figure:
    """Users as points in 2-D (``x, y`` columns, or ``vector`` lists projected by PCA), coloured by ``segment``."""
    _require(frame, ("segment",), "segment")
    if len(frame) > max_points:
        frame = frame.sample(max_points, random_state=random_state)
    if {"x", "y"} <= set(frame.columns):
        xy = frame[["x", "y"]].to_numpy(float)
    elif "vector" in frame.columns:
        xy = project_2d(np.vstack(frame["vector"].to_numpy()))
    else:
        raise UserError("segment data needs either x and y columns or a vector column")
    fig, ax = _figure(6.5, 5.5)
    segments = list(dict.fromkeys(frame["segment"]))
    cmap = plt.get_cmap("tab20", max(len(segments), 1))
    for i, (label, segment) in enumerate(zip(safe_labels(segments, "segment"), segments, strict=True)):
        rows = (frame["segment"] == segment).to_numpy()
        ax.scatter(xy[rows, 0], xy[rows, 1], s=8, alpha=0.6, color=cmap(i), label=label)
    ax.set_title(f"Segment map ({len(frame):,} users, 2-D projection)")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(segments) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    return fig


@_with_font
def bidding_curves(frame: pd.DataFrame) -> Figure:
    """Cumulative clicks against cumulative spend per ``bidder`` over a replay."""
    _require(frame, ("bidder", "step", "spend", "clicks"), "bidding")
    fig, ax = _figure()
    bidders = list(dict.fromkeys(frame["bidder"]))
    for label, bidder in zip(safe_labels(bidders, "bidder"), bidders, strict=True):
        part = frame[frame["bidder"] == bidder].sort_values("step")
        ax.plot(part["spend"], part["clicks"], label=label)
    ax.set_xlabel("cumulative spend")
    ax.set_ylabel("cumulative clicks")
    ax.set_title("Bidding replay: clicks bought per spend")
    ax.legend()
    return fig
