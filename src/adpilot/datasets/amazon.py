"""Amazon 5-core behaviour: S3-Rec user sequences with item attributes, and ReChorus Grocery with real timestamps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.datasets._common import (
    PathLike,
    events_table,
    member,
    open_text,
    placeholder_ts,
    products_table,
    read_csv,
    source_path,
)
from adpilot.errors import InputFileError


@dataclass(frozen=True)
class SequenceData:
    """One chronological item sequence per user (no timestamps) and each item's attribute ids.

    ``users`` (n_users,) int64; ``sequences[i]`` int64 array of user ``users[i]``'s items, oldest first;
    ``item_attributes`` maps item id → attribute ids (category path nodes + brand, as in S3-Rec).
    """

    name: str
    users: np.ndarray
    sequences: list[np.ndarray]
    item_attributes: dict[int, list[int]]

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def leave_last_out(self, n_last: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(histories, held-out last ``n_last`` items) per user: the standard next-item split."""
        return [s[:-n_last] for s in self.sequences], [s[-n_last:] for s in self.sequences]


def beside(file: Path, *names: str) -> Path:
    """The first of ``names`` (or ``<name>.gz``) in ``file``'s folder: the side file a log needs to be read."""
    for name in names:
        for candidate in (file.parent / name, file.parent / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise InputFileError(f"{file} needs its item attributes beside it: one of {', '.join(names)}(.gz)")


def read_s3rec(file: PathLike) -> SequenceData:
    """Read an S3-Rec sequence file (``user item item ...`` per line, ``.txt`` or ``.txt.gz``) and the
    ``<stem>_item2attributes.json(.gz)`` beside it: any Amazon category in that layout, not only the shared two."""
    file = source_path(file, str(file))
    name = file.name.removesuffix(".gz").removesuffix(".txt")
    users, sequences = [], []
    with open_text(file) as handle:
        for number, line in enumerate(handle, 1):
            ids = line.split()
            if not ids:
                continue
            try:
                values = np.array(ids, dtype=np.int64)
            except ValueError:
                raise InputFileError(f"{file} line {number} is not `user item item ...`") from None
            users.append(values[0])
            sequences.append(values[1:])
    with open_text(beside(file, f"{name}_item2attributes.json")) as handle:
        attributes = {int(k): list(v) for k, v in json.load(handle).items()}
    return SequenceData(name, np.asarray(users, np.int64), sequences, attributes)


def load_s3rec(name: str = "Beauty", path: PathLike | None = None) -> SequenceData:
    """Read ``<name>.txt.gz`` and ``<name>_item2attributes.json.gz`` (default folder ``<shared>/amazon_seq_s3rec``)."""
    return read_s3rec(member(source_path(path, "amazon_seq_s3rec"), f"{name}.txt.gz"))


def sequence_records(data: SequenceData) -> tuple[pa.Table, pa.Table]:
    """(events, products) of S3-Rec sequences: one ``purchase`` per interaction (user ``<name>-u<id>``, item
    ``<name><id>``); no timestamps exist, so ``ts`` counts seconds from the placeholder clock in each user's order.
    Products carry the attribute ids as ``category`` (``["a12", "a7"]``); no titles (title = id) or prices (0).
    """
    lengths = np.array([len(s) for s in data.sequences], dtype=np.int64)
    items = np.concatenate(data.sequences) if data.sequences else np.zeros(0, np.int64)
    n = len(items)
    users = np.repeat(data.users, lengths)
    item_ids = pc.binary_join_element_wise(data.name, pc.cast(pa.array(items), pa.string()), "")
    events = events_table(
        n, event_id=pc.binary_join_element_wise(f"{data.name}-e", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
        user_id=pc.binary_join_element_wise(f"{data.name}-u", pc.cast(pa.array(users), pa.string()), ""),
        ts=placeholder_ts(np.arange(n)), type=pa.array(["purchase"] * n), item_id=item_ids)
    known = sorted(data.item_attributes)
    product_ids = [f"{data.name}{i}" for i in known]
    products = products_table(
        len(known), product_id=pa.array(product_ids), title=pa.array(product_ids),
        description=pa.array([""] * len(known)),
        category=pa.array([[f"a{a}" for a in data.item_attributes[i]] for i in known], pa.list_(pa.string())),
        price=pa.array(np.zeros(len(known))), language=pa.array(["en"] * len(known)))
    return events, products


@dataclass(frozen=True)
class RechorusLog:
    """A ReChorus interaction file: ``interactions`` (user_id, item_id, time: int64, file order) and ``meta``
    (item_id, category, also_bought, also_viewed as int lists) from the ``item_meta.csv`` beside it."""

    interactions: pa.Table
    meta: pa.Table

    def sequences(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """(users ascending, each user's items oldest first; ties keep file order)."""
        user = self.interactions["user_id"].to_numpy()
        if not len(user):
            return user, []
        order = np.lexsort((self.interactions["time"].to_numpy(), user))  # stable: ties keep file order
        user, items = user[order], self.interactions["item_id"].to_numpy()[order]
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        return user[starts], np.split(items, starts[1:])


@dataclass(frozen=True)
class GroceryData:
    """Amazon Grocery (ReChorus): ``events`` (``purchase`` per 5-core review, real time; EVENT_ARROW_SCHEMA),
    ``products`` (PRODUCT_ARROW_SCHEMA; category ``["Grocery", "cat<k>"]``, no title text or price: title is the
    id, price 0 = unknown) and ``meta`` (item_id, category, also_bought, also_viewed as int lists)."""

    events: pa.Table
    products: pa.Table
    meta: pa.Table


def _int_lists(column: pa.ChunkedArray | None, n: int) -> pa.Array:
    values = column.to_pylist() if column is not None else [None] * n
    return pa.array([json.loads(v) if v else [] for v in values], pa.list_(pa.int64()))


def read_rechorus(file: PathLike) -> RechorusLog:
    """Read a ReChorus ``user_id<TAB>item_id<TAB>time`` file (``train``/``dev``/``test``, ``.csv`` or ``.csv.gz``;
    extra columns such as ``neg_items`` are dropped) and the ``item_meta.csv(.gz)`` beside it."""
    file = source_path(file, str(file))
    columns = {"user_id": pa.int64(), "item_id": pa.int64(), "time": pa.int64()}
    log = read_csv(file, delimiter="\t", types=columns)
    missing = sorted(set(columns) - set(log.column_names))
    if missing:
        raise InputFileError(f"{file} is not a ReChorus interaction file: no column {missing[0]}")
    meta = read_csv(beside(file, "item_meta.csv"), delimiter="\t",
                    types={"item_id": pa.int64(), "i_category": pa.int32(), "r_complement": pa.string(),
                           "r_substitute": pa.string()})
    if not {"item_id", "i_category"} <= set(meta.column_names):
        raise InputFileError(f"the item_meta.csv beside {file} needs columns item_id and i_category")
    get = {n: meta[n] if n in meta.column_names else None for n in ("r_complement", "r_substitute")}
    meta_table = pa.table({"item_id": meta["item_id"], "category": meta["i_category"],
                           "also_bought": _int_lists(get["r_complement"], meta.num_rows),
                           "also_viewed": _int_lists(get["r_substitute"], meta.num_rows)})
    return RechorusLog(log.select(list(columns)), meta_table)


def load_grocery(path: PathLike | None = None) -> GroceryData:
    """Read ``train.csv.gz`` and ``item_meta.csv.gz`` (default folder ``<shared>/amazon_grocery_rechorus``)."""
    data = read_rechorus(member(source_path(path, "amazon_grocery_rechorus"), "train.csv.gz"))
    log, meta = data.interactions, data.meta
    n = log.num_rows
    item_ids = pc.binary_join_element_wise("grocery", pc.cast(log["item_id"], pa.string()), "")
    events = events_table(
        n, event_id=pc.binary_join_element_wise("grocery-e", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
        user_id=pc.binary_join_element_wise("grocery-u", pc.cast(log["user_id"], pa.string()), ""),
        ts=pc.multiply(log["time"], 1_000_000).cast(pa.timestamp("us", tz="UTC")),
        type=pa.array(["purchase"] * n), item_id=item_ids)
    m = meta.num_rows
    product_ids = pc.binary_join_element_wise("grocery", pc.cast(meta["item_id"], pa.string()), "")
    categories = [["Grocery", f"cat{c}"] for c in meta["category"].to_pylist()]
    products = products_table(
        m, product_id=product_ids, title=product_ids, description=pa.array([""] * m),
        category=pa.array(categories, pa.list_(pa.string())), price=pa.array(np.zeros(m)),
        language=pa.array(["en"] * m))
    return GroceryData(events, products, meta)
