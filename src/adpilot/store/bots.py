"""Bot flags: bursts of events faster than people act are kept and flagged, never dropped."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

BOTS = "_adpilot_bots"
"""The temporary table of the bursts found around one batch."""


def flag_bots(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, burst_per_second: int,
              clicks_per_minute: int, users: str = "events") -> None:
    """Flag (never drop) events of users acting faster than people do, in the whole minutes around [lo, hi].

    A user with more than ``burst_per_second`` events in one second gets all of them flagged; more than
    ``clicks_per_minute`` clicks (shop or ad) in one minute flags those clicks. Only (user, minute) pairs
    present in ``users`` (a relation with ``user_id`` and ``ts``; after each batch: the batch) are counted,
    against every stored event of those minutes, so a burst split across batches or files is still seen
    and the work stays proportional to the batch. A (user, minute) with no more events than the lower limit
    can hold neither kind of burst, so one aggregation over those minutes usually settles it and only the busy
    pairs are counted per second and per click. That first aggregation groups by a 64-bit hash of the user id:
    a collision can only make a pair look busy, and busy pairs are then counted exactly.
    """
    start = lo.replace(second=0, microsecond=0)
    end = hi.replace(second=0, microsecond=0) + timedelta(minutes=1)
    clicks = "('click', 'ad_click')"
    minute, second = _bucket("ts", 60), _bucket("ts", 1)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {BOTS} AS WITH busy AS (
            SELECT hash(user_id) AS h, {minute} AS m FROM events WHERE ts >= ? AND ts < ?
            GROUP BY ALL HAVING count(*) > {min(int(burst_per_second), int(clicks_per_minute))}
        ), pairs AS (
            SELECT DISTINCT k.user_id, {_bucket("k.ts", 60)} AS m FROM {users} k
            SEMI JOIN busy b ON hash(k.user_id) = b.h AND {_bucket("k.ts", 60)} = b.m
        ), seen AS MATERIALIZED (
            SELECT e.user_id, e.ts, e.type FROM events e
            SEMI JOIN pairs k ON e.user_id = k.user_id AND {_bucket("e.ts", 60)} = k.m
            WHERE e.ts >= ? AND e.ts < ?)
        SELECT user_id, {second} AS t, 1 AS seconds FROM seen
        GROUP BY ALL HAVING count(*) > {int(burst_per_second)}
        UNION ALL
        SELECT user_id, {minute} AS t, 60 AS seconds FROM seen WHERE type IN {clicks}
        GROUP BY ALL HAVING count(*) > {int(clicks_per_minute)}""", [start, end] * 2)
    found = con.execute(f"SELECT count(*) FROM {BOTS}").fetchall()
    if not found[0][0]:
        return
    for seconds, only in ((1, ""), (60, f"AND events.type IN {clicks}")):
        con.execute(f"""
            UPDATE events SET bot_flag = TRUE FROM (SELECT user_id, t FROM {BOTS} WHERE seconds = {seconds}) b
            WHERE events.user_id = b.user_id AND {_bucket("events.ts", seconds)} = b.t {only}
              AND NOT events.bot_flag AND events.ts >= ? AND events.ts < ?""", [start, end])


def _bucket(ts: str, seconds: int) -> str:
    """Which whole ``seconds`` (1: second, 60: minute) since the epoch ``ts`` falls in: the same as ``date_trunc``
    in UTC, without its calendar arithmetic (three times cheaper in the per-batch aggregation)."""
    return f"fdiv(epoch_us({ts}), {seconds * 1_000_000})"
