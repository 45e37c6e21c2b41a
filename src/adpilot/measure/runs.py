"""The run-folder convention every room writes results into, and ``adpilot report`` reads from.

``runs/<name>/`` holds one file per result kind; a file's stem says what it is, so the report knows which plot it
feeds (see :data:`KINDS`). JSON files are objects; tables are Parquet (or JSON ``{"rows": [...]}``)::

    runs/<name>/policy_eval.json      eval policy: {"logging_value": {...}, "rows": [{policy, estimator, value,
                                       value_lower, value_upper, lift, lift_lower, lift_upper, verdict}]}
    runs/<name>/lift.parquet          policy, metric, value, lower, upper (simulation / Coat / any comparison)
    runs/<name>/pacing.parquet        campaign, hour, spend, plan
    runs/<name>/calibration.parquet   label (0/1), pctr
    runs/<name>/segments.parquet      x, y (a 2-D projection) or vector (list of floats), segment
    runs/<name>/creatives.parquet     creative_id, ad_id, text, score, ... (any extra columns are shown)
    runs/<name>/bidding.parquet       bidder, step, spend, clicks (cumulative replay curves)
    runs/<name>/coat.json, ab.json    results of ``adpilot eval coat`` and ``adpilot ab analyze``

A ``<stem>.command`` text file beside a result holds the command that reproduces it (JSON results may carry a
``command`` field instead); the report prints it with the figure.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from adpilot.errors import InputFileError

KINDS = ("policy_eval", "lift", "pacing", "calibration", "segments", "creatives", "bidding", "coat", "ab")


def _clean(value):
    """JSON has no NaN: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON (NaN -> null), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2, default=str))
    return path


def read_table(path: Path) -> pd.DataFrame:
    """A result table from Parquet, or from JSON holding ``{"rows": [...]}``."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputFileError(f"result file {path} cannot be read: {error}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise InputFileError(f"result file {path} must hold an object with a 'rows' list")
    return pd.DataFrame(payload["rows"])


def find_results(run_dir: Path) -> dict[str, Path]:
    """The result files of a run folder by kind (Parquet preferred over JSON when both exist)."""
    if not run_dir.is_dir():
        raise InputFileError(f"run folder {run_dir} does not exist")
    found: dict[str, Path] = {}
    for kind in KINDS:
        for suffix in (".parquet", ".json"):
            candidate = run_dir / f"{kind}{suffix}"
            if candidate.is_file() and kind not in found:
                found[kind] = candidate
    return found
