"""Moving float32 matrices in and out of DuckDB ``FLOAT[]`` columns through Arrow, without per-row Python, and the
8-bit directions that store interest vectors.

An interest vector is a direction: stored as ``TINYINT[dim]`` codes, each row scaled so that its largest component
is +-127 (:func:`direction_codes`), and read back as the unit row of the codes (:func:`unit_rows`). A quarter of
float32's bytes: an update rewrites every touched user's vector, and on this hardware its cost went with the bytes
moved. Read back, a 384-d unit vector is off by less than 1/127 per component, its cosine with itself is above
0.9999, and cosines between two vectors move by ~3e-4 on average, < 3e-3 at most
(``tests/understand/test_understand_vectors.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_BLOCK = 8192  # rows of a float temporary


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


def direction_codes(matrix: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """The rows' directions as int8 codes (largest component +-127); zero rows, and rows not in ``keep``, all 0.

    In blocks of rows through one float buffer: fresh memory is costly here (138k x 384 floats: 0.085 s vs 0.195 s
    with a temporary per step).

    >>> direction_codes(np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0]], dtype=np.float32))
    array([[  64, -127,   32],
           [   0,    0,    0]], dtype=int8)
    """
    codes = np.zeros(matrix.shape, dtype=np.int8)
    scaled = np.empty((min(_BLOCK, len(matrix)), matrix.shape[1]), dtype=np.float32)  # one buffer for all blocks
    for s in range(0, len(matrix), _BLOCK):
        block = matrix[s:s + _BLOCK]
        if not block.size:
            break
        peak = np.maximum(block.max(axis=1), -block.min(axis=1))  # two reductions, no |block| temporary
        if keep is not None:
            peak = np.where(keep[s:s + _BLOCK], peak, 0)
        scale = np.divide(127, peak, out=np.zeros(len(peak), np.float32), where=peak > 0)
        out = scaled[:len(block)]
        np.rint(np.multiply(block, scale[:, None], out=out), out=out)
        codes[s:s + _BLOCK] = out
    return codes


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row (float or int8 codes) as a float32 unit row (zero rows stay zero); a non-matrix is returned as is.

    >>> unit_rows(np.array([[3, -4], [0, 0]], dtype=np.int8))
    array([[ 0.6, -0.8],
           [ 0. ,  0. ]], dtype=float32)
    """
    if matrix.ndim != 2:
        return matrix
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0))


def fetch_row(con: Any, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
    """The first row of a query, or None (DuckDB relations no longer keep a cursor to call ``fetchone`` on)."""
    rows = con.sql(sql, params=params or None).limit(1).fetchall()
    return rows[0] if rows else None
