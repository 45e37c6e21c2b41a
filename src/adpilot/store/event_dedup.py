"""Exact de-duplication of events on insert: an event is known by its id and time, or without an id by its content.

Nothing derived is stored per event for this; see :func:`store_events`.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from adpilot.store.kinds import KINDS, Kind, TimeWindow
from adpilot.store.validate import Inputs, literal, quote, typed_sql

IN = "_adpilot_in"
"""The name under which the batch being ingested is registered."""

CONTENT = tuple(s.name for s in KINDS["events"].specs if s.name not in ("event_id", "ts"))
"""The fields that identify an event without an ``event_id`` (together with ``ts``)."""


def _identity(alias: str, with_ids: bool = True) -> list[str]:
    """The values identifying an event of ``alias``: ``ts``, ``event_id`` and, when it has no id, its content.

    Two events are the same when all of these are equal (NULL to NULL): both have the same id and time, or both
    lack an id and match in every field. ``with_ids`` False: the relation has no ids, so the content needs no
    ``CASE`` around it (cheaper on a batch of a file without an ``event_id`` column)."""
    content = [f"CASE WHEN {alias}event_id IS NULL THEN {alias}{quote(c)} END" if with_ids else f"{alias}{quote(c)}"
               for c in CONTENT]
    return [f"{alias}ts", f"{alias}event_id", *content]


def _same_event(left: str, right: str, right_ids: bool = True) -> str:
    """SQL join condition: the events ``left`` and ``right`` are the same event (see :func:`_identity`)."""
    pairs = zip(_identity(left), _identity(right, right_ids), strict=True)
    return " AND ".join(f"{a} IS NOT DISTINCT FROM {b}" for a, b in pairs)


def batch_rows(source: str, rows: tuple[int, int], span: tuple[datetime, datetime], alias: str = "") -> str:
    """SQL condition selecting the stored events of one batch: its file, its rows and (for zone maps) its time span."""
    return (f"{alias}source_file = {literal(source)} AND {alias}source_row BETWEEN {int(rows[0])} AND {int(rows[1])} "
            f"AND {alias}ts BETWEEN TIMESTAMPTZ '{span[0].isoformat()}' AND TIMESTAMPTZ '{span[1].isoformat()}'")


def time_span(con: duckdb.DuckDBPyConnection, kind: Kind, inputs: Inputs,
               window: TimeWindow) -> tuple[datetime, datetime] | None:
    """First and last plausible timestamp of the batch (before the other checks: a superset of its valid events)."""
    ts = next(s for s in kind.specs if s.name == "ts")
    row = con.execute(f"SELECT min(t), max(t) FROM (SELECT {typed_sql(ts, inputs)} AS t FROM {IN}) WHERE t BETWEEN ? AND ?",
                      [window.earliest, window.latest]).fetchall()[0]
    return (row[0], row[1]) if row and row[0] is not None else None


def store_events(con: duckdb.DuckDBPyConnection, source: str, cleaned: str, rows: tuple[int, int],
                  span: tuple[datetime, datetime], with_ids: bool) -> tuple[int, tuple[datetime | None, datetime | None]]:
    """Insert the batch's new events; returns how many and their time span.

    An event with an ``event_id`` is known by (``event_id``, ``ts``), one without by all its cleaned fields, so
    exact copies and re-sent events are duplicates. Nothing derived is stored for this (a content hash per row
    cost more CPU than validating it): the insert streams straight from the cleaning query, leaving out events
    already stored, compared field by field in a hash anti-join (only stored events inside the batch's time span
    are probed, which zone maps make cheap on time-ordered data whatever the table's size). Copies inside the
    batch are then looked for among the batch's stored rows with one aggregation over ``ts`` and a 64-bit hash of
    the id or user: only rows sharing those can be copies (a hash collision only adds candidates), and only those
    are compared in full; all but the first row of each copy are deleted in the same transaction. ``with_ids``:
    the batch may hold event ids (the file has the column).
    """
    inserted = con.execute(f"""
        INSERT INTO events BY NAME
        SELECT k.* EXCLUDE (_row, _reason, _raw), k._row AS source_row, ? AS source_file, FALSE AS bot_flag
        FROM ({cleaned}) k
        ANTI JOIN (SELECT ts, event_id, {", ".join(map(quote, CONTENT))} FROM events WHERE ts BETWEEN ? AND ?) e
            ON {_same_event("e.", "k.", with_ids)}""", [source, *span]).fetchall()[0]
    accepted = int(inserted[0]) if inserted else 0
    if not accepted:
        return 0, (None, None)
    mine, who = batch_rows(source, rows, span), "hash(coalesce(event_id, user_id))"
    found = con.execute(f"""SELECT min(ts), max(ts), count(*) FILTER (WHERE n > 1) FROM (
        SELECT ts, count(*) AS n FROM events WHERE {mine} GROUP BY ts, {who})""").fetchall()[0]
    copies = 0
    if found and found[2]:
        identity = ", ".join(f"{e} AS _i{i}" for i, e in enumerate(_identity("")))
        same = " AND ".join(f"{e} IS NOT DISTINCT FROM d._i{i}" for i, e in enumerate(_identity("events.")))
        deleted = con.execute(f"""DELETE FROM events USING (
                SELECT {identity}, min(source_row) AS first FROM events
                SEMI JOIN (SELECT ts AS _t, {who} AS _who FROM events WHERE {mine} GROUP BY ALL HAVING count(*) > 1) c
                    ON ts = c._t AND {who} = c._who
                WHERE {mine} GROUP BY ALL HAVING count(*) > 1
            ) d WHERE {same} AND events.source_row > d.first AND {batch_rows(source, rows, span, "events.")}""").fetchall()
        copies = int(deleted[0][0]) if deleted else 0
    return accepted - copies, ((found[0], found[1]) if found else (None, None))
