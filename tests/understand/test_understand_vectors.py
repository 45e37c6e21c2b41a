"""Interest vectors stored as int8 directions: what the codes keep of a vector and of the cosines read from it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adpilot.understand.vectors import blob_codes, codes_column, direction_codes, stored_rows, unit_rows


@pytest.mark.parametrize("offset", [0.0, 0.05])  # e5's vectors share a common component: a large peak
def test_codes_keep_directions_and_cosines(offset: float) -> None:
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng.normal(size=(2000, 384)).astype(np.float32) / np.sqrt(384) + offset)
    read = unit_rows(direction_codes(vectors * rng.uniform(0.1, 50, (2000, 1)).astype(np.float32)))
    assert np.einsum("ij,ij->i", read, vectors).min() > 0.9999
    assert np.abs(read - vectors).max() < 1 / 127
    pairs = rng.integers(0, 2000, (5000, 2))
    exact = np.einsum("ij,ij->i", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    approx = np.einsum("ij,ij->i", read[pairs[:, 0]], read[pairs[:, 1]])
    assert np.abs(approx - exact).mean() < 5e-4 and np.abs(approx - exact).max() < 3e-3


def test_zero_and_dropped_rows_code_to_zero() -> None:
    matrix = np.array([[0.0, 0.0], [1.0, -2.0], [3.0, 1.0]], dtype=np.float32)
    codes = direction_codes(matrix, keep=np.array([True, True, False]))
    np.testing.assert_array_equal(codes, [[0, 0], [64, -127], [0, 0]])
    np.testing.assert_array_equal(unit_rows(codes)[[0, 2]], 0.0)
    assert direction_codes(np.empty((0, 4), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_blobs_read_back_whatever_their_arrow_type_nulls_and_bad_lengths(kind: pa.DataType) -> None:
    codes = direction_codes(np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=np.float32))
    written = codes_column(codes, np.array([True, False, True]))
    assert written.to_pylist()[1] is None
    column = pa.chunked_array([written.cast(kind)[:2], pa.array([codes[2].tobytes(), b"\x01"], kind)])
    read, lengths = blob_codes(column)
    np.testing.assert_array_equal(lengths, [3, 0, 3, 1])  # NULL: 0; a blob of another length is told apart
    np.testing.assert_array_equal(read[[0, 2]], codes[[0, 2]])
    assert not read[[1, 3]].any()
    assert stored_rows(column, 3)[1].shape == (2, 3)
