"""Read CTR training/test files in the formats the data comes in, as a stream of pandas frames.

Formats (detected by extension, then by the first line):

* Parquet (``.parquet``/``.pq``) and CSV/TSV (optionally ``.gz``): a table with a label column; read in record
  batches, so a file larger than memory works.
* libFM / SVMlight (``label idx:val ...``, e.g. iPinYou ``train.fm.txt``): the i-th token becomes column ``f<i>``.
* S3-Rec sequence files (``Beauty.txt.gz``: ``user item item ...`` per line, with ``<name>_item2attributes.json``
  beside it) and ReChorus interactions (``user_id<TAB>item_id<TAB>time`` with ``item_meta.csv`` beside it): turned
  into the DIN protocol task (:func:`sequence_task`).

This module stays in the rank room until ``adpilot.datasets`` grows shared readers.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from adpilot.errors import InputFileError, UserError

Role = Literal["train", "valid", "test"]
LABEL_GUESSES = ("label", "click", "clicked", "is_click", "is_attributed", "conversion", "y")
LEAKS = ("attributed_time",)
"""Columns known to be written after the label happened (TalkingData's download time): never features."""


@dataclass(frozen=True)
class Source:
    """One input file: how to stream it, which columns are labels, users (for gAUC) and time."""

    path: Path
    kind: str
    labels: tuple[str, ...]
    group: str | None = None
    frame: pd.DataFrame | None = None  # small derived tasks are built in memory

    def frames(self, batch_rows: int = 200_000) -> Iterator[pd.DataFrame]:
        """The file as frames of at most ``batch_rows`` rows, in file order."""
        if self.frame is not None:
            for start in range(0, len(self.frame), batch_rows):
                yield self.frame.iloc[start:start + batch_rows]
        elif self.kind == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.path).iter_batches(batch_size=batch_rows):
                yield _tidy(batch.to_pandas())
        elif self.kind == "csv":
            sep = "\t" if _first_line(self.path).count("\t") else ","
            yield from (_tidy(f) for f in pd.read_csv(self.path, sep=sep, chunksize=batch_rows))
        elif self.kind == "libfm":
            yield from _libfm_frames(self.path, batch_rows)
        else:
            raise InputFileError(f"unknown file kind {self.kind!r} for {self.path}")

    def n_rows(self) -> int:
        """Row count, cheaply (Parquet metadata, or a line count)."""
        if self.frame is not None:
            return len(self.frame)
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        with _open_text(self.path) as handle:
            lines = sum(1 for _ in handle)
        return lines - (1 if self.kind == "csv" else 0)


def _open_text(path: Path) -> io.TextIOBase:
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as handle:
            return handle.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read {path} as text ({error})") from None


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop leak columns and turn a timestamp text column into ``hour``/``weekday`` categories."""
    frame = frame.drop(columns=[c for c in LEAKS if c in frame.columns])
    for name in [c for c in frame.columns if c.endswith("_time") or c in ("ts", "time", "timestamp")]:
        col = frame[name]
        stamp = (pd.to_datetime(col, unit="s", errors="coerce") if pd.api.types.is_numeric_dtype(col)
                 else pd.to_datetime(col, errors="coerce"))
        frame = frame.drop(columns=[name]).assign(hour=stamp.dt.hour.astype("Int64").astype(str),
                                                  weekday=stamp.dt.weekday.astype("Int64").astype(str))
    return frame


def _libfm_frames(path: Path, batch_rows: int) -> Iterator[pd.DataFrame]:
    with _open_text(path) as handle:
        while True:
            lines = [line.split() for _, line in zip(range(batch_rows), handle, strict=False)]
            if not lines:
                return
            width = max(len(t) for t in lines)
            rows = [[t[0]] + [tok.split(":", 1)[0] for tok in t[1:]] + [None] * (width - len(t)) for t in lines]
            frame = pd.DataFrame(rows, columns=["label"] + [f"f{i}" for i in range(width - 1)])
            frame["label"] = pd.to_numeric(frame["label"], errors="coerce")
            yield frame


def open_source(path: str | Path, role: Role = "train", labels: tuple[str, ...] | None = None,
                seed: int = 0) -> Source:
    """Detect the format of ``path`` and return a :class:`Source` for the given ``role``.

    ``role`` only matters for sequence files, which hold train, validation and test targets together
    (leave-last-two-out); ``seed`` draws their negative items.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file {path} does not exist")
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        kind = "parquet"
    else:
        first = _first_line(path)
        if re.fullmatch(r"\s*-?[\d.]+(\s+\d+:[-\d.eE]+)+\s*", first):
            return _with_labels(Source(path, "libfm", ("label",)), labels)
        if name.endswith(".txt") and re.fullmatch(r"\s*\d+(\s+\d+)+\s*", first):
            return _with_labels(_s3rec_source(path, role, seed), labels)
        if set(first.strip().split("\t")) >= {"user_id", "item_id", "time"}:
            return _with_labels(_rechorus_source(path, role, seed), labels)
        if not name.endswith((".csv", ".tsv", ".txt")):
            raise InputFileError(f"cannot tell the format of {path}: use .parquet, .csv, .tsv or libFM text")
        kind = "csv"
    source = Source(path, kind, ())
    head = next(source.frames(1000), None)
    if head is None or head.empty:
        raise InputFileError(f"{path} holds no rows")
    found = labels or next(((g,) for g in LABEL_GUESSES if g in head.columns), None)
    if found is None:
        raise UserError(f"no label column in {path}: pass --label (columns: {list(head.columns)[:20]})")
    group = next((c for c in ("user_id", "uid", "user") if c in head.columns), None)
    return _with_labels(Source(path, kind, tuple(found), group), found)


def _with_labels(source: Source, labels: tuple[str, ...] | None) -> Source:
    if not labels:
        return source
    present = source.frame.columns if source.frame is not None else next(source.frames(100)).columns
    for label in labels:
        if label not in present:
            raise UserError(f"label column `{label}` is not in {source.path} (columns: {list(present)[:20]})")
    return Source(source.path, source.kind, tuple(labels), source.group, source.frame)


def _sibling(path: Path, *names: str) -> Path:
    for name in names:
        for candidate in (path.parent / name, path.parent / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise InputFileError(f"{path} needs its item attributes beside it: one of {', '.join(names)}(.gz)")


def _s3rec_source(path: Path, role: Role, seed: int) -> Source:
    """S3-Rec: first attribute of an item is (usually) its brand, the last its most specific category."""
    stem = path.name.removesuffix(".gz").removesuffix(".txt")
    with _open_text(_sibling(path, f"{stem}_item2attributes.json")) as handle:
        attrs = {int(k): v for k, v in json.load(handle).items()}
    with _open_text(path) as handle:
        seqs = [[int(t) for t in line.split()[1:]] for line in handle if line.strip()]
    users = np.arange(1, len(seqs) + 1)
    cate = {i: a[-1] for i, a in attrs.items() if a}
    brand = {i: a[0] for i, a in attrs.items() if len(a) > 1}
    frame = sequence_task(users, seqs, {"cate": cate, "brand": brand}, role, seed)
    return Source(path, "sequence", ("label",), "user_id", frame)


def _rechorus_source(path: Path, role: Role, seed: int) -> Source:
    events = pd.read_csv(path, sep="\t").sort_values(["user_id", "time"], kind="stable")
    meta = pd.read_csv(_sibling(path, "item_meta.csv"), sep="\t", usecols=["item_id", "i_category"])
    grouped = events.groupby("user_id", sort=True)["item_id"].agg(list)
    cate = dict(zip(meta["item_id"], meta["i_category"], strict=True))
    frame = sequence_task(grouped.index.to_numpy(), grouped.tolist(), {"cate": cate}, role, seed)
    return Source(path, "sequence", ("label",), "user_id", frame)


def sequence_task(users: np.ndarray, seqs: list[list[int]], attrs: dict[str, dict[int, object]], role: Role,
                  seed: int) -> pd.DataFrame:
    """The DIN protocol: predict whether the next item is the user's, against one sampled item.

    Per user with items ``s_0..s_{n-1}``: ``test`` targets ``s_{n-1}``, ``valid`` targets ``s_{n-2}``, ``train``
    targets every ``s_k`` for ``1 <= k <= n-3``; the history is every earlier item. Each positive row is paired
    with a negative row holding an item drawn uniformly from the catalogue (not the positive), with the same
    history. Columns: ``user_id, item_id, <attrs>, hist_item_id, hist_<attr>, label``.

    >>> t = sequence_task(np.array([7]), [[1, 2, 3, 4, 5]], {"cate": {i: i % 2 for i in range(1, 6)}}, "test", 0)
    >>> t[["user_id", "item_id", "label"]].values[0].tolist(), t["hist_item_id"][0]
    ([7, 5, 1], [1, 2, 3, 4])
    """
    offset = {"train": 0, "valid": 1, "test": 2}[role]
    rng = np.random.default_rng([seed, offset])
    catalogue = np.array(sorted({i for s in seqs for i in s}), dtype=np.int64)
    rows_user, rows_target, rows_hist = [], [], []
    for user, seq in zip(users, seqs, strict=True):
        n = len(seq)
        ks = range(1, n - 2) if role == "train" else ([n - 2] if role == "valid" else [n - 1])
        for k in ks:
            if k >= 1:
                rows_user.append(user)
                rows_target.append(seq[k])
                rows_hist.append(seq[:k])
    if not rows_target:
        raise UserError("the sequence file has no user with enough items for this split (need >= 3 items)")
    positives = np.array(rows_target, dtype=np.int64)
    negatives = catalogue[rng.integers(0, len(catalogue), len(positives))]
    clash = negatives == positives
    while clash.any():
        negatives[clash] = catalogue[rng.integers(0, len(catalogue), int(clash.sum()))]
        clash = negatives == positives
    n_pos = len(positives)
    items = np.empty(2 * n_pos, np.int64)
    items[0::2], items[1::2] = positives, negatives
    hist = [h for h in rows_hist for _ in (0, 1)]
    frame = pd.DataFrame({"user_id": np.repeat(np.asarray(rows_user), 2), "item_id": items})
    for name, table in attrs.items():
        frame[name] = pd.array([table.get(i) for i in items], dtype="Int64")
        frame[f"hist_{name}"] = [[table.get(i) for i in h] for h in hist]
    frame.insert(2, "hist_item_id", hist)
    frame["label"] = np.tile([1, 0], n_pos)
    return frame
