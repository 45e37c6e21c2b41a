"""The oldest stretch of a profile table moved to its end, a little at every update, instead of vacuumed.

An update replaces each touched user's row: the old one is deleted, and its row group keeps the dead row until
something rewrites the group. Touched users are spread over the whole table, so DuckDB's vacuum rewrites nearly
every row group when it runs: for a million profiles 2.7-4 s, every third update of 40% of the users, which took
that update over 10 s. Here, each update copies the live rows of the table's oldest stretches whose rows are
mostly dead to the end of the table (the same transaction deletes the stretches), and the checkpoint drops the row
groups left empty without rewriting anything. Rows are appended in time order, so row ids are ages: with 40% of
the users touched per update, a stretch is moved two updates after it was written, with a third of its rows live
(the touched among them are rewritten anyway), so an update moves ~100k rows of a million-user table (a
simulation of the policy, and the stored rows: 1.55-1.63M for 1M profiles, against 1.0-1.83M with the vacuum).
The copying runs on the main thread while the worker computes (see :func:`adpilot.understand.profiles._write_chunks`).

DuckDB keeps row ids when it drops a row group (those after it keep theirs: tested), so the stretches are measured
in row ids from the first live row; deleted rows still hold their ids, so a stretch's live share is its live rows
over its span. The table's last stretch, where appends still land, is never moved. The moving statements read a
row id range below the transaction's own new rows: an unfiltered ``INSERT INTO t SELECT * FROM t`` over a
transaction's own appended rows raised an internal error in DuckDB 2.0.1 (with ``write_buffer_row_group_count = 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROW_GROUP_ROWS = 122_880  # DuckDB's row group: the unit a checkpoint can drop
LIVE_SHARE = 0.5  # a stretch with fewer live rows than this share of its span is moved
MOVED_LIVE_MAX = 2 * ROW_GROUP_ROWS  # live rows of the stretches moved by one update, at most (the first move
# after a build would otherwise take all of the build's rows at once, ~40% more than a later one)
PIECE_ROWS = ROW_GROUP_ROWS  # row ids moved per statement: pieces fill the main thread's idle turns (2x: no faster)

_STRETCHES_SQL = """
WITH f AS (SELECT min(rowid) AS first, max(rowid) AS last FROM {table})
SELECT (rowid - first) // {rows} AS stretch, count(*) AS live, any_value(first), any_value(last)
FROM {table}, f GROUP BY stretch ORDER BY stretch
"""


def moved_range(con: Any, table: str) -> tuple[int, int]:
    """The row ids ``[first, end)`` of ``table``'s rows to move (``first`` is its first live row; empty: none)."""
    rows = con.sql(_STRETCHES_SQL.format(table=table, rows=ROW_GROUP_ROWS)).fetchall()
    if not rows:
        return 0, 0
    first, last = rows[0][2], rows[0][3]
    end, moved, live_by_stretch = first, 0, {stretch: live for stretch, live, _, _ in rows}
    for stretch in range(rows[-1][0]):  # the last stretch never: appends still land there
        live = live_by_stretch.get(stretch, 0)
        if live >= LIVE_SHARE * ROW_GROUP_ROWS or moved + live > MOVED_LIVE_MAX:
            break
        end, moved = first + (stretch + 1) * ROW_GROUP_ROWS, moved + live
    return int(first), int(min(end, last))


@dataclass
class Moves:
    """The statements that move the old stretches of ``profiles`` and ``profile_affinity``, run a piece at a time
    (:meth:`step`) in one transaction; the stretches themselves are deleted with the replaced rows afterwards."""

    profiles_end: int
    affinity_end: int
    pending: list[tuple[str, list[int]]]

    @classmethod
    def plan(cls, con: Any, profiles_sql: str, affinity_sql: str) -> Moves:
        """Moves for the stretches found now: ``profiles_sql`` and ``affinity_sql`` copy the rows of one row id
        range, given its start and end (exclusive) as parameters."""
        pending, ends = [], []
        for table, sql in (("profiles", profiles_sql), ("profile_affinity", affinity_sql)):
            start, end = moved_range(con, table)
            pending += [(sql, [lo, min(lo + PIECE_ROWS, end)]) for lo in range(start, end, PIECE_ROWS)]
            ends.append(end)
        return cls(ends[0], ends[1], pending)

    def step(self, con: Any) -> bool:
        """Run the next piece; False when none was left."""
        if not self.pending:
            return False
        sql, params = self.pending.pop(0)
        con.execute(sql, params)
        return True

    def finish(self, con: Any) -> None:
        """Run every piece left."""
        while self.step(con):
            pass

