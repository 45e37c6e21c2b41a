"""TalkingData AdTracking: mobile ad clicks with the conversion label ``is_attributed`` (app download)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.datasets._common import PathLike, events_table, member, read_csv, source_path

_TYPES = {"ip": pa.int64(), "app": pa.int32(), "device": pa.int32(), "os": pa.int32(), "channel": pa.int32(),
          "click_time": pa.timestamp("s"), "attributed_time": pa.timestamp("s"), "is_attributed": pa.int8()}


def load_talkingdata(path: PathLike | None = None) -> pa.Table:
    """The raw click log: ip, app, device, os, channel (ints), click_time, attributed_time (UTC), is_attributed.

    ``path`` is the CSV or its folder (default ``<shared>/talkingdata_adtracking/clicks.csv``).
    """
    source = source_path(path, "talkingdata_adtracking")
    table = read_csv(member(source, "clicks.csv") if source.is_dir() else source, types=_TYPES)
    utc = pa.timestamp("s", tz="UTC")
    return table.set_column(5, "click_time", pc.assume_timezone(table["click_time"], "UTC").cast(utc)) \
                .set_column(6, "attributed_time", pc.assume_timezone(table["attributed_time"], "UTC").cast(utc))


def talkingdata_events(clicks: pa.Table) -> pa.Table:
    """Clicks as adpilot events: one ``ad_click`` per row and a ``conversion`` at ``attributed_time`` when attributed.

    user ``ip<ip>``, ad ``app<app>`` (the advertised app), slot ``ch<channel>`` (the publisher channel), device
    ``<device>/<os>``; event ids ``td<row>`` and ``td<row>-conv``. Rows: n_clicks + n_attributed.
    """
    n = clicks.num_rows
    converted = np.flatnonzero(clicks["is_attributed"].to_numpy() == 1)
    rows = np.concatenate([np.arange(n), converted])
    take = pa.array(rows)
    row_str = pc.cast(take, pa.string())
    is_conv = np.arange(len(rows)) >= n
    suffix = pa.array(np.where(is_conv, "-conv", ""))
    ts = pc.if_else(pa.array(is_conv), clicks["attributed_time"].take(take), clicks["click_time"].take(take))

    def prefixed(prefix: str, column: str) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pc.cast(clicks[column].take(take), pa.string()), "")

    return events_table(
        len(rows),
        event_id=pc.binary_join_element_wise("td", row_str, suffix, ""),
        user_id=prefixed("ip", "ip"),
        ts=ts,
        type=pa.array(np.where(is_conv, "conversion", "ad_click")),
        ad_id=prefixed("app", "app"),
        slot=prefixed("ch", "channel"),
        device=pc.binary_join_element_wise(pc.cast(clicks["device"].take(take), pa.string()),
                                           pc.cast(clicks["os"].take(take), pa.string()), "/"),
    )
