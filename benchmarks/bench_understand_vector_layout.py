"""How DuckDB stores interest vectors: inserting (and reading back) one update chunk's vectors in each layout.

    .venv/bin/python benchmarks/bench_understand_vector_layout.py [--rows 138000] [--dim 384] [--repeats 3]

Each layout gets the same rows (a user id and a vector) inserted from Arrow into a fresh on-disk table, one
DuckDB thread, uncompressed, one row group buffered, inside a transaction — as a profile update inserts a chunk
(``adpilot.understand.profiles``). Layouts: int8 codes as a BLOB (the one adpilot stores), the same codes as a
``TINYINT[dim]`` ARRAY, and float32 unit vectors as a ``FLOAT[dim]`` ARRAY (the layout before session 10). The peer
is the float ARRAY; ratios are against it, medians of ``--repeats`` runs, measured in the same process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from adpilot.understand.vectors import codes_column, direction_codes, stored_rows, unit_rows


def layouts(rows: int, dim: int) -> dict[str, tuple[str, pa.Array]]:
    """(SQL type, Arrow column) of each layout, for the same random unit vectors."""
    rng = np.random.default_rng(0)
    floats = unit_rows(rng.normal(size=(rows, dim)).astype(np.float32))
    codes = direction_codes(floats)
    return {
        "BLOB of int8 codes": ("BLOB", codes_column(codes, np.ones(rows, dtype=bool))),
        f"TINYINT[{dim}] codes": (f"TINYINT[{dim}]", pa.FixedSizeListArray.from_arrays(pa.array(codes.reshape(-1)), dim)),
        f"FLOAT[{dim}] floats": (f"FLOAT[{dim}]", pa.FixedSizeListArray.from_arrays(pa.array(floats.reshape(-1)), dim)),
    }


def timed(path: Path, sql_type: str, column: pa.Array) -> tuple[float, float]:
    """(insert, read-back) seconds of one layout in a fresh database file."""
    part = pa.table({"user_id": pa.array([f"u{i}" for i in range(len(column))]), "v": column})  # noqa: F841
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE t (user_id VARCHAR NOT NULL, v {sql_type})")
        con.execute("SET threads = 1; SET force_compression = 'uncompressed'; SET write_buffer_row_group_count = 1")
        con.begin()
        start = time.perf_counter()
        con.execute("INSERT INTO t SELECT * FROM part")
        inserted = time.perf_counter() - start
        con.commit()
        start = time.perf_counter()
        stored_rows(con.sql("SELECT v FROM t").to_arrow_table().column("v"))
        return inserted, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=138_000, help="one update chunk of touched users")
    parser.add_argument("--dim", type=int, default=384, help="the encoder's dim (e5: 384, USE: 512)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"command: {' '.join(sys.argv)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, (sql_type, column)) in enumerate(layouts(args.rows, args.dim).items()):
            runs = [timed(Path(tmp) / f"{k}_{r}.duckdb", sql_type, column) for r in range(args.repeats)]
            results[name] = np.median(np.array(runs), axis=0)
    peer = results[f"FLOAT[{args.dim}] floats"]
    for name, (insert_s, read_s) in results.items():
        print(f"{name:22s} insert {insert_s:5.2f} s ({insert_s / peer[0]:.2f}x)   read {read_s:5.2f} s "
              f"({read_s / peer[1]:.2f}x)   [{args.rows:,} rows, median of {args.repeats}]")


if __name__ == "__main__":
    main()
