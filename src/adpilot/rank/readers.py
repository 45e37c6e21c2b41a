"""Read CTR training/test files in the formats the data comes in, as a stream of pandas frames.

Formats (detected by extension, then by the first line):

* Parquet (``.parquet``/``.pq``) and CSV/TSV (optionally ``.gz``): a table with a label column; read in record
  batches, so a file larger than memory works.
* libFM / SVMlight (``label idx:val ...``, e.g. iPinYou ``train.fm.txt``): the i-th token becomes column ``f<i>``.
* S3-Rec sequence files (``Beauty.txt.gz``: ``user item item ...`` per line, with ``<name>_item2attributes.json``
  beside it) and ReChorus interactions (``user_id<TAB>item_id<TAB>time`` with ``item_meta.csv`` beside it): turned
  into the DIN protocol task (:func:`sequence_task`).

The text formats are parsed by :mod:`adpilot.datasets` (one parser per format); this module only shapes them
into the frames the rank models eat.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from adpilot.datasets._common import open_text
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
        with open_text(self.path) as handle:
            lines = sum(1 for _ in handle)
        return lines - (1 if self.kind == "csv" else 0)


def _first_line(path: Path) -> str:
    try:
        with open_text(path) as handle:
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
    """Each row's i-th feature index becomes the category of column ``f<i>`` (values are ignored: one-hot)."""
    from adpilot.datasets.ipinyou import iter_libfm

    for block in iter_libfm(path, batch_rows):
        lengths = np.diff(block.X.indptr)
        width = int(lengths.max(initial=0))
        tokens = np.full((len(lengths), width), None, dtype=object)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        tokens[rows, np.arange(len(rows)) - block.X.indptr[rows]] = block.X.indices.astype(str)
        frame = pd.DataFrame(tokens, columns=[f"f{i}" for i in range(width)])
        frame.insert(0, "label", block.y.astype(np.int64))
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


def _s3rec_source(path: Path, role: Role, seed: int) -> Source:
    """S3-Rec: first attribute of an item is (usually) its brand, the last its most specific category."""
    from adpilot.datasets.amazon import read_s3rec

    data = read_s3rec(path)
    cate = {i: a[-1] for i, a in data.item_attributes.items() if a}
    brand = {i: a[0] for i, a in data.item_attributes.items() if len(a) > 1}
    seqs = [s.tolist() for s in data.sequences]
    frame = sequence_task(data.users, seqs, {"cate": cate, "brand": brand}, role, seed)
    return Source(path, "sequence", ("label",), "user_id", frame)


def _rechorus_source(path: Path, role: Role, seed: int) -> Source:
    from adpilot.datasets.amazon import read_rechorus

    log = read_rechorus(path)
    users, seqs = log.sequences()
    cate = dict(zip(log.meta["item_id"].to_pylist(), log.meta["category"].to_pylist(), strict=True))
    frame = sequence_task(users, [s.tolist() for s in seqs], {"cate": cate}, role, seed)
    return Source(path, "sequence", ("label",), "user_id", frame)


def sequence_task(users: np.ndarray, seqs: list[list[int]], attrs: Mapping[str, Mapping[int, object]], role: Role,
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


WORLD_ITEM_EVENTS = ("click", "add_to_cart", "purchase")
"""Organic events of the synthetic world whose items form a user's behaviour history."""
IMPRESSION_EVENT_TYPES = ("ad_impression", "ad_click", "conversion", *WORLD_ITEM_EVENTS)
IMPRESSION_EVENT_COLUMNS = ("user_id", "session_id", "ts", "type", "item_id", "ad_id", "creative_id", "device",
                            "slot")
"""What :func:`label_impressions` reads: impressions, their outcomes and the organic history."""


def world_impressions(directory: str | Path, max_history: int = 50) -> pd.DataFrame:
    """One row per ``ad_impression`` of a synthetic world written by ``adpilot world`` (the store-side files
    only, never ``truth/``), labelled by :func:`label_impressions`."""
    import pyarrow.parquet as pq

    folder = Path(directory)
    files = {n: folder / f"{n}.parquet" for n in ("events", "ads", "products")}
    for file in files.values():
        if not file.is_file():
            raise InputFileError(f"no synthetic world in {folder}: {file.name} is missing (run `adpilot world`)")
    events = pq.read_table(files["events"], columns=list(IMPRESSION_EVENT_COLUMNS),
                           filters=[("type", "in", list(IMPRESSION_EVENT_TYPES))]).to_pandas()
    if not (events["type"] == "ad_impression").any():
        raise UserError(f"the world in {folder} has no ad impressions (generate it with more --events)")
    ads = pq.read_table(files["ads"], columns=["ad_id", "product_id"]).to_pandas()
    products = pq.read_table(files["products"], columns=["product_id", "category", "brand", "price"]).to_pandas()
    return label_impressions(events, ads, products, max_history)


def store_impressions(con: object, max_history: int = 50) -> pd.DataFrame:
    """:func:`label_impressions` over the store's events (``con``: a DuckDB connection), leaving out events
    ingestion flagged as bot bursts and users the anomaly detector flagged (``anomalies`` table, when built):
    a click model should learn from shoppers. User ids are the store's pseudonyms."""
    types = ", ".join(f"'{t}'" for t in IMPRESSION_EVENT_TYPES)
    flagged = ("AND user_id NOT IN (SELECT entity FROM anomalies WHERE entity_kind = 'user' AND flagged)"
               if con.execute("SELECT count(*) FROM information_schema.tables "  # type: ignore[attr-defined]
                              "WHERE table_name = 'anomalies'").fetchone()[0] else "")
    events = con.execute(  # type: ignore[attr-defined]
        f"SELECT {', '.join(IMPRESSION_EVENT_COLUMNS)} FROM events WHERE type IN ({types}) AND NOT bot_flag "
        f"{flagged}").df()
    if not (events["type"] == "ad_impression").any():
        raise UserError("the store has no ad impressions from unflagged users to learn clicks from")
    ads = con.execute("SELECT ad_id, product_id FROM ads").df()  # type: ignore[attr-defined]
    products = con.execute("SELECT product_id, category, brand, price FROM products").df()  # type: ignore[attr-defined]
    return label_impressions(events, ads, products, max_history)


def label_impressions(events: pd.DataFrame, ads: pd.DataFrame, products: pd.DataFrame,
                      max_history: int = 50) -> pd.DataFrame:
    """One row per ``ad_impression`` in ``events``, labelled with the ``click`` and ``conversion`` that followed it.

    A click is joined to the latest earlier impression of the same user, session, ad and creative; a
    conversion to the latest earlier click likewise. Columns: ``user_id, ad_id, creative_id, item_id`` (the
    ad's product), ``cate`` (its leaf), ``top_cate, brand, price, slot, device, hour, hist_item_id,
    hist_cate`` (the user's last ``max_history`` clicked/carted/bought items before the impression),
    ``click, conversion`` and ``ts`` (for splitting: drop it from the features), in time order.
    """
    key = ["user_id", "session_id", "ad_id", "creative_id"]
    kinds = {k: events[events["type"] == k].sort_values("ts", kind="stable")
             for k in ("ad_impression", "ad_click", "conversion")}
    imps = kinds["ad_impression"].drop(columns=["type", "item_id"]).reset_index(drop=True)
    imps["row"] = np.arange(len(imps))
    clicks = kinds["ad_click"][[*key, "ts"]].assign(row=_link(kinds["ad_click"], imps, key))
    clicks = clicks[clicks["row"] >= 0].assign(row=lambda c: c["row"].astype(np.int64))
    converted = _link(kinds["conversion"], clicks, key)
    imps["click"] = np.isin(imps["row"], clicks["row"]).astype(np.int64)
    imps["conversion"] = np.isin(imps["row"], converted[converted >= 0]).astype(np.int64)

    products = products.copy()
    products["cate"] = products["category"].map(lambda c: c[-1] if c is not None and len(c) else None)
    products["top_cate"] = products["category"].map(lambda c: c[0] if c is not None and len(c) else None)
    item = ads.merge(products.drop(columns=["category"]), on="product_id", how="left")
    imps = imps.merge(item.rename(columns={"product_id": "item_id"}), on="ad_id", how="left")
    leaf = dict(zip(products["product_id"], products["cate"], strict=True))

    organic = events[events["type"].isin(WORLD_ITEM_EVENTS)].sort_values(["user_id", "ts"], kind="stable")
    history = _histories(organic, imps, max_history)
    imps["hist_item_id"] = history
    imps["hist_cate"] = [[leaf.get(i) for i in h] for h in history]
    utc = imps["ts"].dt.tz_convert("UTC") if imps["ts"].dt.tz is not None else imps["ts"]
    imps["hour"] = utc.dt.hour.astype(str)  # the hour of day the engine passes: UTC, whatever the session's zone
    order = ["user_id", "ad_id", "creative_id", "item_id", "cate", "top_cate", "brand", "price", "slot", "device",
             "hour", "hist_item_id", "hist_cate", "click", "conversion", "ts"]
    return imps.sort_values("row")[order].reset_index(drop=True)


def _link(later: pd.DataFrame, earlier: pd.DataFrame, key: list[str]) -> np.ndarray:
    """For each row of ``later`` (sorted by ``ts``), the ``row`` of the latest row of ``earlier`` (sorted by
    ``ts``) with the same ``key`` at or before it, each used once (-1: none). When two clicks fall after the
    same impressions (a bot shown one ad twice within seconds), the later ones re-link to the earlier
    impressions."""
    linked = np.full(len(later), -1, np.int64)
    todo, free = np.arange(len(later)), earlier[[*key, "ts", "row"]]
    while len(todo) and len(free):
        pairs = pd.merge_asof(later.iloc[todo][[*key, "ts"]].assign(at=todo), free, on="ts", by=key)
        pairs = pairs.dropna(subset=["row"]).drop_duplicates("row")
        if pairs.empty:
            break
        linked[pairs["at"].to_numpy()] = pairs["row"].to_numpy(np.int64)
        free = free[~free["row"].isin(pairs["row"])]
        todo = np.setdiff1d(todo, pairs["at"].to_numpy())
    return linked


def _histories(organic: pd.DataFrame, imps: pd.DataFrame, max_history: int) -> list[list[str]]:
    """Each impression's user's last ``max_history`` organic items strictly before it (``organic`` sorted by
    user, then time)."""
    users = pd.Index(pd.unique(pd.concat([organic["user_id"], imps["user_id"]])))
    origin = min(organic["ts"].min(), imps["ts"].min()) if len(organic) else imps["ts"].min()
    span = int((max(organic["ts"].max(), imps["ts"].max()) - origin).value // 1000) + 1 if len(organic) else 1

    def keys(frame: pd.DataFrame) -> np.ndarray:
        micros = (frame["ts"] - origin).to_numpy().astype("timedelta64[us]").astype(np.int64)
        return users.get_indexer(frame["user_id"]).astype(np.int64) * span + micros

    item_keys = keys(organic)
    imp_keys = keys(imps)
    stop = np.searchsorted(item_keys, imp_keys, side="left")
    first = np.searchsorted(item_keys, imp_keys - imp_keys % span, side="left")
    start = np.maximum(first, stop - max_history)
    items = organic["item_id"].to_numpy()
    return [items[a:b].tolist() for a, b in zip(start, stop, strict=True)]
