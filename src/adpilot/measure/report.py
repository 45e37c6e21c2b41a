"""A self-contained HTML report of one run folder: every plot embedded as base64 PNG and also written as a file.

``build_report(run_dir)`` reads whatever result files the run folder holds (see :mod:`adpilot.measure.runs`),
draws one section per kind, and writes ``<run_dir>/report/report.html`` plus ``<run_dir>/report/<kind>.png``.
A kind with no file is listed as absent rather than drawn from nothing.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from adpilot.errors import UserError
from adpilot.measure import plots
from adpilot.measure.runs import find_results, read_table

_STYLE = """body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f6f6f6;padding:1px 4px}
.absent{color:#888}"""


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class _Page:
    """Accumulates HTML sections and writes each figure's PNG beside the page."""

    def __init__(self, out_dir: Path, title: str):
        self.out_dir = out_dir
        self.parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                      f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
        self.pngs: list[Path] = []

    def section(self, heading: str, body: str = "") -> None:
        self.parts.append(f"<h2>{html.escape(heading)}</h2>{body}")

    def figure(self, name: str, fig: Figure, caption: str) -> None:
        data = _png(fig)
        path = self.out_dir / f"{name}.png"
        path.write_bytes(data)
        self.pngs.append(path)
        self.parts.append(f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,"
                          f"{base64.b64encode(data).decode()}'><figcaption>{html.escape(caption)}</figcaption>"
                          "</figure>")

    def write(self) -> Path:
        path = self.out_dir / "report.html"
        path.write_text("".join(self.parts) + "</body></html>", encoding="utf-8")
        return path


def _table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    return frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-", border=0)


def _command(path: Path) -> str:
    """The command that produced a result: a ``<stem>.command`` file beside it, or a JSON result's ``command``."""
    sidecar = path.with_suffix(".command")
    if sidecar.is_file():
        command = sidecar.read_text().strip()
    elif path.suffix == ".json":
        command = json.loads(path.read_text()).get("command")
    else:
        command = None
    return f"<p>Reproduce: <code>{html.escape(command)}</code></p>" if command else ""


def _policy_eval(page: _Page, path: Path) -> None:
    payload = json.loads(path.read_text())
    rows = pd.DataFrame(payload["rows"])
    logging = payload["logging_value"]
    page.section("Targeting policies learned from logs (off-policy estimates)",
                 _command(path) + f"<p>Logging policy click rate: {logging['estimate']:.5f} "
                 f"[{logging['lower']:.5f}, {logging['upper']:.5f}]</p>" + _table(rows))
    shown = rows[rows["estimator"] == "snipw"] if (rows["estimator"] == "snipw").any() else rows
    lift = shown.rename(columns={"value_lower": "lower", "value_upper": "upper"})
    page.figure("policy_eval", plots.lift_by_policy(lift, baseline=logging["estimate"], title="Click rate by policy",
                                                    ylabel="click rate", baseline_label="logging policy"),
                "SNIPW estimate of each learned policy's click rate on the test log; dashed: logging policy.")


def _lift(page: _Page, path: Path) -> None:
    frame = read_table(path)
    page.section("Lift by policy", _command(path) + _table(frame))
    page.figure("lift", plots.lift_by_policy(frame), "Value per policy with 95% intervals.")


def _coat(page: _Page, path: Path) -> None:
    payload = json.loads(path.read_text())
    frame = pd.DataFrame(payload["rows"])
    page.section("Coat: targeting on self-selected ratings, judged on random exposures", _command(path) + _table(frame))
    long = pd.concat([pd.DataFrame({"policy": frame["model"], "metric": m, "value": frame[m],
                                    "lower": frame[f"{m}_lower"], "upper": frame[f"{m}_upper"]})
                      for m in ("precision@5", "ndcg@5", "auc") if m in frame.columns])
    page.figure("coat", plots.lift_by_policy(long, title="Coat test metrics", ylabel="metric"),
                "precision@5, NDCG@5 and AUC on Coat's uniformly random test ratings (rating >= 4 positive).")


def _ab(page: _Page, path: Path) -> None:
    payload = json.loads(path.read_text())
    rates = pd.DataFrame([{"metric": r["metric"], "A": r["a"]["estimate"], "B": r["b"]["estimate"],
                           "lift": r["relative_lift"], "p": r["p_value"], "P(B>A)": r["prob_b_better"]}
                          for r in payload["rates"]])
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in payload.get("warnings", []))
    page.section("A/B test", _command(path) + _table(pd.DataFrame(payload["totals"])) + _table(rates)
                 + (f"<ul>{warnings}</ul>" if warnings else ""))


def _pacing(page: _Page, path: Path) -> None:
    page.section("Budget pacing", _command(path))
    page.figure("pacing", plots.pacing_curves(read_table(path)), "Cumulative spend (solid) vs plan (dashed) by hour.")


def _calibration(page: _Page, path: Path) -> None:
    frame = read_table(path)
    if not {"label", "pctr"} <= set(frame.columns):
        raise UserError(f"{path} needs columns label and pctr")
    page.section("Calibration of pCTR", _command(path))
    page.figure("calibration", plots.calibration_plot(frame["label"].to_numpy(), frame["pctr"].to_numpy()),
                "Observed click rate per predicted-CTR bin; on the diagonal is perfectly calibrated.")


def _segments(page: _Page, path: Path) -> None:
    page.section("Segment map", _command(path))
    page.figure("segments", plots.segment_map(read_table(path)), "User interest vectors in 2-D, coloured by segment.")


def _creatives(page: _Page, path: Path) -> None:
    frame = read_table(path)
    if "score" in frame.columns:
        frame = frame.sort_values("score", ascending=False)
    page.section("Creative leaderboard", _command(path) + _table(frame))


def _bidding(page: _Page, path: Path) -> None:
    page.section("Bidding replay", _command(path))
    page.figure("bidding", plots.bidding_curves(read_table(path)), "Cumulative clicks vs cumulative spend per bidder.")


SECTIONS = {"policy_eval": _policy_eval, "lift": _lift, "coat": _coat, "ab": _ab, "pacing": _pacing,
            "calibration": _calibration, "segments": _segments, "creatives": _creatives, "bidding": _bidding}


def build_report(run_dir: str | Path, title: str | None = None) -> tuple[Path, list[Path]]:
    """Write ``<run_dir>/report/report.html`` (and one PNG per plot); return the page and PNG paths."""
    run_dir = Path(run_dir)
    results = find_results(run_dir)
    if not results:
        raise UserError(f"run folder {run_dir} holds no result file (expected any of "
                        f"{', '.join(k + '.json|parquet' for k in SECTIONS)})")
    out_dir = run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    page = _Page(out_dir, title or f"adpilot report: {run_dir.name}")
    for kind, section in SECTIONS.items():
        if kind in results:
            try:
                section(page, results[kind])
            except (KeyError, TypeError, ValueError) as error:
                raise UserError(f"result file {results[kind]} does not have the expected layout: {error}") from None
    absent = [k for k in SECTIONS if k not in results]
    if absent:
        page.section("Not in this run", f"<p class='absent'>{', '.join(absent)}</p>")
    return page.write(), page.pngs

