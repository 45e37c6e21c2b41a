"""Moving float32 matrices in and out of DuckDB ``FLOAT[]`` columns through Arrow, without per-row Python, and the
8-bit directions that store interest vectors.

An interest vector is a direction: stored as ``dim`` int8 codes in a BLOB, each row scaled so that its largest
component is +-127 (:func:`direction_codes`, :func:`codes_column`), and read back as the unit row of the codes
(:func:`blob_codes`, :func:`unit_rows`). A quarter of float32's bytes, and a BLOB, not a ``TINYINT[dim]`` ARRAY:
an update rewrites every touched user's vector, and DuckDB inserts 138k rows of codes in 0.10 s as BLOBs against
0.68 s as a ``TINYINT[384]`` ARRAY (0.70 s as ``FLOAT[384]``: an ARRAY costs per element, not per byte;
``benchmarks/bench_understand_vector_layout.py``). Read back, a 384-d unit
vector is off by less than 1/127 per component, its cosine with itself is above 0.9999, and cosines between two
vectors move by ~3e-4 on average, < 3e-3 at most (``tests/understand/test_understand_vectors.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.errors import UserError

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


def codes_column(codes: np.ndarray, valid: np.ndarray) -> pa.Array:
    """(n, dim) int8 codes as a BLOB column (Arrow fixed-size binary, the codes' memory as is); NULL where not
    ``valid``."""
    codes = np.ascontiguousarray(codes, dtype=np.int8)
    validity = pa.array(np.asarray(valid, dtype=bool)).buffers()[1]
    return pa.Array.from_buffers(pa.binary(codes.shape[1]), len(codes), [validity, pa.py_buffer(codes)])


def blob_codes(column: pa.Array | pa.ChunkedArray, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, dim) int8, byte length of each row) of a BLOB column of codes; NULL rows and rows of another
    length than ``dim`` (default: the first non-NULL row's) are zeros, their length tells them apart (0 for NULL).

    >>> blob_codes(pa.array([bytes([3, 252]), None, bytes([1])]))
    (array([[ 3, -4],
           [ 0,  0],
           [ 0,  0]], dtype=int8), array([2, 0, 1]))
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    lengths = np.concatenate([pc.fill_null(pc.binary_length(c), 0).to_numpy(zero_copy_only=False) for c in chunks]
                             or [np.zeros(0, np.int64)]).astype(np.int64)
    dim = _first_length(lengths) if dim is None else dim
    codes = np.zeros((len(lengths), dim), dtype=np.int8)
    start = 0
    for chunk in chunks:
        rows = np.flatnonzero(lengths[start:start + len(chunk)] == dim) if dim else np.zeros(0, np.int64)
        if len(rows):
            dense = pc.take(chunk, pa.array(rows)) if len(rows) < len(chunk) else chunk
            if pa.types.is_fixed_size_binary(dense.type):  # as :func:`codes_column` writes it
                data = np.frombuffer(dense.buffers()[1], np.int8)[dense.offset * dim:(dense.offset + len(dense)) * dim]
            else:  # as DuckDB returns a BLOB (large_binary: 64-bit offsets)
                width = np.int64 if pa.types.is_large_binary(dense.type) else np.int32
                offsets = np.frombuffer(dense.buffers()[1], width)[dense.offset:dense.offset + len(dense) + 1]
                data = np.frombuffer(dense.buffers()[2], np.int8)[offsets[0]:offsets[-1]]
            codes[start + rows] = data.reshape(-1, dim)
        start += len(chunk)
    return codes, lengths


def _first_length(lengths: np.ndarray) -> int:
    """The first non-zero of the rows' lengths (0 for NULL), or 0: the dim a column's vectors are read at."""
    return int(lengths[lengths > 0][0]) if (lengths > 0).any() else 0


def stored_rows(column: pa.Array | pa.ChunkedArray, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(length of each row's vector, 0 for NULL; the rows of length ``dim`` as a (k, dim) matrix, codes or floats)
    of stored interest vectors: BLOBs of int8 codes, or float lists/arrays of stores built before them. ``dim``
    defaults to the first non-NULL row's length. Read the rows with :func:`unit_rows`.

    >>> stored_rows(pa.array([[0.6, 0.8], None, [1.0, 0.0]]))
    (array([2, 0, 2]), array([[0.6, 0.8],
           [1. , 0. ]]))
    """
    if any(is_kind(column.type) for is_kind in (pa.types.is_binary, pa.types.is_large_binary,
                                                 pa.types.is_fixed_size_binary)):
        codes, lengths = blob_codes(column, dim)
        return lengths, codes[lengths == codes.shape[1]]
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32()))
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    dim = _first_length(lengths) if dim is None else dim
    keep = lengths == dim
    values = pc.list_flatten(column.filter(pa.array(keep))).to_numpy(zero_copy_only=False)
    return lengths, values.reshape(-1, dim) if dim else np.zeros((0, 0), values.dtype)


def stored_unit_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A non-NULL column of stored interest vectors (:func:`stored_rows`) as float32 unit rows; vectors of
    different lengths are refused (a store half rebuilt with another encoder)."""
    lengths, rows = stored_rows(column)
    if (lengths != rows.shape[1]).any():
        raise UserError(f"stored interest vectors differ in length ({sorted(set(lengths.tolist()))}): "
                        "run `adpilot profile build` again")
    return unit_rows(rows)


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
