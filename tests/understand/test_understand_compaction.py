"""The oldest, mostly dead stretch of a table is moved to its end and the checkpoint drops the row groups it leaves
empty — without DuckDB's vacuum, and with no row id of a kept row changed (DuckDB's behaviour relied on)."""

from __future__ import annotations

import duckdb

from adpilot.understand.compaction import ROW_GROUP_ROWS, Moves, moved_range

MOVE = "INSERT INTO {table} SELECT * FROM {table} WHERE rowid >= $1 AND rowid < $2"
GROUPS = "SELECT count(DISTINCT row_group_id), sum(count) FILTER (column_path = '[0]') FROM pragma_storage_info('{}')"


def four_groups(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Four row groups of ``x = rowid``; 70% of the first two groups' rows deleted (not row 0), 10% of the third."""
    con.execute(f"CREATE TABLE {table} AS SELECT range AS x FROM range({4 * ROW_GROUP_ROWS})")
    con.execute("CHECKPOINT")
    con.execute(f"DELETE FROM {table} WHERE x > 0 AND ((x < {2 * ROW_GROUP_ROWS} AND x % 10 < 7) "
                f"OR (x >= {2 * ROW_GROUP_ROWS} AND x < {3 * ROW_GROUP_ROWS} AND x % 10 = 0))")
    con.execute("CHECKPOINT")


def test_the_oldest_mostly_dead_stretches_are_moved_never_the_last(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("SET max_vacuum_tasks = 0")
    four_groups(con, "t")
    assert moved_range(con, "t") == (0, 2 * ROW_GROUP_ROWS)  # the third stretch is 90% live
    con.execute(f"DELETE FROM t WHERE x >= {2 * ROW_GROUP_ROWS} AND x % 10 < 9")
    assert moved_range(con, "t") == (0, 3 * ROW_GROUP_ROWS)  # the last stretch stays, however dead
    con.execute("CREATE TABLE empty (x INTEGER)")
    assert moved_range(con, "empty") == (0, 0)


def test_moved_stretches_leave_row_groups_that_the_checkpoint_drops(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("SET max_vacuum_tasks = 0")  # DuckDB's vacuum off, as in an update
    for table in ("profiles", "profile_affinity"):
        four_groups(con, table)
    before = set(con.sql("SELECT x FROM profiles").fetchnumpy()["x"].tolist())
    kept = con.sql(f"SELECT rowid, x FROM profiles WHERE x >= {2 * ROW_GROUP_ROWS}").fetchall()
    con.begin()
    moves = Moves.plan(con, MOVE.format(table="profiles"), MOVE.format(table="profile_affinity"))
    assert (moves.profiles_end, moves.affinity_end) == (2 * ROW_GROUP_ROWS, 2 * ROW_GROUP_ROWS)
    assert len(moves.pending) == 4  # a row group a piece
    assert moves.step(con)
    moves.finish(con)
    assert not moves.step(con)
    for table, end in (("profiles", moves.profiles_end), ("profile_affinity", moves.affinity_end)):
        con.execute(f"DELETE FROM {table} WHERE rowid < ?", [end])
    con.commit()
    con.execute("CHECKPOINT")
    assert set(con.sql("SELECT x FROM profiles").fetchnumpy()["x"].tolist()) == before  # every row kept, once
    assert con.sql("SELECT count(*) FROM profiles").fetchall()[0][0] == len(before)
    assert con.sql(f"SELECT rowid, x FROM profiles WHERE x >= {2 * ROW_GROUP_ROWS} AND rowid < {4 * ROW_GROUP_ROWS}"
                   ).fetchall() == kept  # row ids of the rows left in place unchanged
    for table in ("profiles", "profile_affinity"):
        groups, stored = con.sql(GROUPS.format(table)).fetchall()[0]
        assert stored == 2 * ROW_GROUP_ROWS + 2 * int(0.3 * ROW_GROUP_ROWS) + 1  # the two old groups dropped
        assert groups == 3  # two left in place, the moved rows in one
