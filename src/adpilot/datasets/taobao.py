"""Taobao UserBehavior (Tianchi): ``user_id,item_id,category_id,behavior,unix_ts`` rows without header."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.datasets._common import PathLike, events_table, member, read_csv, source_path

BEHAVIOUR_TYPES = {"pv": "page_view", "cart": "add_to_cart", "buy": "purchase", "fav": "click"}
"""Taobao behaviour → adpilot event type. adpilot has no "favourite" type: ``fav`` becomes a ``click`` whose
``page`` is ``favorite``, so it stays distinguishable."""


def load_taobao_behavior(path: PathLike | None = None) -> pa.Table:
    """The raw rows: user_id, item_id, category_id (int64), behavior (pv/cart/fav/buy), ts (UTC).

    ``path`` is the CSV(.gz) or its folder (default ``<shared>/taobao_userbehavior_flink96k``); the same reader
    takes the ``tiny_ctr_seq_samples/taobao_UserBehavior_head4321.csv`` sample.
    """
    source = source_path(path, "taobao_userbehavior_flink96k")
    table = read_csv(member(source, "UserBehavior_head96k.csv.gz") if source.is_dir() else source,
                     names=["user_id", "item_id", "category_id", "behavior", "ts"],
                     types={"user_id": pa.int64(), "item_id": pa.int64(), "category_id": pa.int64(),
                            "behavior": pa.string(), "ts": pa.int64()})
    return table.set_column(4, "ts", pc.multiply(table["ts"], 1_000_000).cast(pa.timestamp("us", tz="UTC")))


def taobao_events(rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(events, items): events with users ``tb-u<id>`` and items ``tb<id>``; items maps item_id → category_id.

    A behaviour outside pv/cart/fav/buy raises a :class:`ValueError` naming it (nothing is dropped silently).
    Rows with impossible timestamps (the source has one at 1970) are kept; ingest's validation quarantines them.
    """
    behaviour = rows["behavior"]
    unknown = pc.unique(pc.filter(behaviour, pc.invert(pc.is_in(behaviour, pa.array(list(BEHAVIOUR_TYPES))))))
    if len(unknown):
        raise ValueError(f"`behavior` has values outside {sorted(BEHAVIOUR_TYPES)}: {unknown.to_pylist()[:3]}")
    n = rows.num_rows
    keys = pa.array(list(BEHAVIOUR_TYPES))
    kind = pa.array(list(BEHAVIOUR_TYPES.values())).take(pc.index_in(behaviour, keys))
    item_ids = pc.binary_join_element_wise("tb", pc.cast(rows["item_id"], pa.string()), "")
    events = events_table(
        n, event_id=pc.binary_join_element_wise("tb-e", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
        user_id=pc.binary_join_element_wise("tb-u", pc.cast(rows["user_id"], pa.string()), ""),
        ts=rows["ts"], type=kind, item_id=item_ids,
        page=pc.if_else(pc.equal(behaviour, "fav"), "favorite", pa.scalar(None, pa.string())))
    items = pa.table({"item_id": item_ids, "category_id": rows["category_id"]}).group_by(
        ["item_id", "category_id"]).aggregate([])
    return events, items
