"""Amazon 5-core behaviour: S3-Rec user sequences with item attributes, and ReChorus Grocery with real timestamps."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.datasets._common import (
    PathLike,
    events_table,
    member,
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


def load_s3rec(name: str = "Beauty", path: PathLike | None = None) -> SequenceData:
    """Read ``<name>.txt.gz`` and ``<name>_item2attributes.json.gz`` (default folder ``<shared>/amazon_seq_s3rec``)."""
    folder = source_path(path, "amazon_seq_s3rec")
    users, sequences = [], []
    with gzip.open(member(folder, f"{name}.txt.gz"), "rt") as handle:
        for number, line in enumerate(handle, 1):
            ids = line.split()
            if not ids:
                continue
            try:
                values = np.array(ids, dtype=np.int64)
            except ValueError:
                raise InputFileError(f"{name}.txt.gz line {number} is not `user item item ...`") from None
            users.append(values[0])
            sequences.append(values[1:])
    with gzip.open(member(folder, f"{name}_item2attributes.json.gz"), "rt") as handle:
        attributes = {int(k): list(v) for k, v in json.load(handle).items()}
    return SequenceData(name, np.asarray(users, np.int64), sequences, attributes)


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
class GroceryData:
    """Amazon Grocery (ReChorus): ``events`` (``purchase`` per 5-core review, real time; EVENT_ARROW_SCHEMA),
    ``products`` (PRODUCT_ARROW_SCHEMA; category ``["Grocery", "cat<k>"]``, no title text or price: title is the
    id, price 0 = unknown) and ``meta`` (item_id, category, also_bought, also_viewed as int lists)."""

    events: pa.Table
    products: pa.Table
    meta: pa.Table


def _int_lists(column: pa.ChunkedArray) -> pa.Array:
    return pa.array([json.loads(v) if v else [] for v in column.to_pylist()], pa.list_(pa.int64()))


def load_grocery(path: PathLike | None = None) -> GroceryData:
    """Read ``train.csv.gz`` and ``item_meta.csv.gz`` (default folder ``<shared>/amazon_grocery_rechorus``)."""
    folder = source_path(path, "amazon_grocery_rechorus")
    log = read_csv(member(folder, "train.csv.gz"), delimiter="\t",
                   types={"user_id": pa.int64(), "item_id": pa.int64(), "time": pa.int64()})
    meta = read_csv(member(folder, "item_meta.csv.gz"), delimiter="\t",
                    types={"item_id": pa.int64(), "i_category": pa.int32(), "r_complement": pa.string(),
                           "r_substitute": pa.string()})
    n = log.num_rows
    item_ids = pc.binary_join_element_wise("grocery", pc.cast(log["item_id"], pa.string()), "")
    events = events_table(
        n, event_id=pc.binary_join_element_wise("grocery-e", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
        user_id=pc.binary_join_element_wise("grocery-u", pc.cast(log["user_id"], pa.string()), ""),
        ts=pc.multiply(log["time"], 1_000_000).cast(pa.timestamp("us", tz="UTC")),
        type=pa.array(["purchase"] * n), item_id=item_ids)
    m = meta.num_rows
    product_ids = pc.binary_join_element_wise("grocery", pc.cast(meta["item_id"], pa.string()), "")
    categories = [["Grocery", f"cat{c}"] for c in meta["i_category"].to_pylist()]
    products = products_table(
        m, product_id=product_ids, title=product_ids, description=pa.array([""] * m),
        category=pa.array(categories, pa.list_(pa.string())), price=pa.array(np.zeros(m)),
        language=pa.array(["en"] * m))
    meta_table = pa.table({"item_id": meta["item_id"], "category": meta["i_category"],
                           "also_bought": _int_lists(meta["r_complement"]),
                           "also_viewed": _int_lists(meta["r_substitute"])})
    return GroceryData(events, products, meta_table)
