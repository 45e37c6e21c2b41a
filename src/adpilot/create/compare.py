"""Paired comparison of two ``adpilot creative eval --out`` runs: per metric, each run's mean and the mean
per-item difference with its 95 % bootstrap interval, over the references both runs scored.

Why paired: on 30 AdvertiseGen pairs one run's BLEU-4 interval is ~±1.3 wide, mostly from which references are
hard; the same references scored twice cancel that, so the difference between two settings is measured to
~±0.5-0.8 — and two sample sets of one setting still differ by ~0.4 BLEU-4, which is why a gain must hold on many
pairs (see docs/STATUS.md, #5)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adpilot.create.metrics import mean_interval
from adpilot.errors import InputFileError, UserError
from adpilot.jsonl import read_json_lines


@dataclass(frozen=True)
class MetricComparison:
    """Means of one metric in runs ``a`` and ``b`` over the shared references, and ``a − b`` with its interval."""

    metric: str
    mean_a: float
    mean_b: float
    difference: float
    lower: float
    upper: float


def read_rows(path: Path) -> dict[int, dict]:
    """The per-item rows of an ``eval --out`` file, by reference index. A run killed midway left whole lines only,
    so every line must be a JSON object with an integer ``index``; anything else names the file and line."""
    if not path.is_file():
        raise InputFileError(f"no eval output at {path}")
    rows = dict(read_json_lines(path, _indexed, "an `eval --out` row"))
    if not rows:
        raise InputFileError(f"{path} holds no eval rows")
    return rows


def compare_runs(a: Mapping[int, dict], b: Mapping[int, dict], seed: int = 0) -> list[MetricComparison]:
    """Every numeric metric both runs report, compared over the references both scored (in index order).

    >>> a = {1: {"bleu-4": 6.0}, 2: {"bleu-4": 4.0}, 3: {"bleu-4": 9.0}}
    >>> [(c.mean_a, c.mean_b, c.difference) for c in compare_runs(a, {1: {"bleu-4": 5.0}, 2: {"bleu-4": 3.0}})]
    [(5.0, 4.0, 1.0)]
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        raise UserError("the two eval runs share no reference: compare runs over the same --offset/--limit")
    first = a[shared[0]]
    metrics = [m for m in first if m != "index" and _is_number(first[m])
               and all(_is_number(a[i].get(m)) and _is_number(b[i].get(m)) for i in shared)]
    result = []
    for metric in metrics:
        x = [float(a[i][metric]) for i in shared]
        y = [float(b[i][metric]) for i in shared]
        difference, lower, upper = mean_interval([p - q for p, q in zip(x, y, strict=True)], seed=seed)
        result.append(MetricComparison(metric, sum(x) / len(x), sum(y) / len(y), difference, lower, upper))
    return result


def _indexed(row: dict) -> tuple[int, dict]:
    index = row["index"]
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"`index` must be an integer, got {index!r}")
    return index, row


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
