"""Moving float32 matrices in and out of DuckDB ``FLOAT[]`` columns through Arrow, without per-row Python."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


def to_list_array(matrix: np.ndarray) -> pa.ListArray:
    """Rows of a (n, d) matrix as an Arrow ``list<float>`` array (zero-copy values).

    >>> to_list_array(np.eye(2, dtype=np.float32)).to_pylist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def from_list_column(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """A non-null Arrow list column of equal-length rows as a float32 (n, dim) matrix.

    >>> from_list_column(pa.array([[1.0, 2.0], [3.0, 4.0]]), 2)
    array([[1., 2.],
           [3., 4.]], dtype=float32)
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32()))
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(column), dim)


def fetch_row(con: Any, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None (DuckDB relations no longer keep a cursor to call ``fetchone`` on)."""
    rows = con.sql(sql, params=params or None).limit(1).fetchall()
    return rows[0] if rows else None
