"""Parts of the profile update: RFM quintiles ranked in numpy are exactly DuckDB's ``ntile(5)`` over buyers (ties
by user id); stored vector sums (int8 directions times norms) are added to the batch's, as one addition would."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy import sparse

from adpilot.understand import interest, vectors
from adpilot.understand.profiles import _rfm


@pytest.mark.parametrize("n", [0, 1, 3, 5, 7, 1000])
def test_quintiles_equal_duckdb_ntile(n: int) -> None:
    rng = np.random.default_rng(n)
    users = np.array([f"u{i}" for i in rng.permutation(n)], dtype=object)
    key = rng.integers(0, 4, n).astype(np.float64)  # many ties, broken by user id
    buyer = rng.random(n) < 0.7
    rows = pa.table({"user_id": pa.array(users, pa.string()), "key": key, "buyer": buyer})  # noqa: F841
    expected = duckdb.sql("""
        SELECT CASE WHEN buyer THEN ntile(5) OVER (PARTITION BY buyer ORDER BY key, user_id) ELSE 0 END AS q
        FROM rows ORDER BY user_id""").fetchnumpy()["q"]
    in_user_order = np.argsort(users.astype(str))
    got = _rfm(key, in_user_order[buyer[in_user_order]])
    np.testing.assert_array_equal(got[np.argsort(users.astype(str))], expected)


def test_stored_sums_added_to_the_new_ones() -> None:
    rng = np.random.default_rng(0)
    weights = sparse.random(9, 4, density=0.5, format="csr", random_state=1, dtype=np.float32)
    sources = rng.normal(size=(4, 3)).astype(np.float32)
    rows = np.array([7, 0, 3, 5, 8])
    old = vectors.direction_codes(rng.normal(size=(5, 3)).astype(np.float32))
    norms = rng.random(5).astype(np.float32) + 0.5
    consent = np.arange(9) != 4
    parts = [(rows[:3], old[:3], norms[:3]), (rows[3:], old[3:], norms[3:])]  # as Arrow chunks come
    codes, got_norms = interest.interest_vectors(weights, sources, parts, consent)
    assert pa.types.is_fixed_size_binary(codes.type) and codes.type.byte_width == 3
    total = weights.toarray() @ sources
    total[rows] += vectors.unit_rows(old) * norms[:, None]
    expected = np.linalg.norm(total, axis=1)
    assert got_norms.to_pylist()[4] is None and codes[4].as_py() is None  # no consent
    np.testing.assert_allclose([x for x, c in zip(got_norms.to_pylist(), consent, strict=True) if c],
                               expected[consent], rtol=1e-5)
    got = vectors.unit_rows(vectors.blob_codes(codes)[0][consent])
    np.testing.assert_allclose(got, total[consent] / expected[consent, None], atol=1 / 127)  # see test_understand_vectors
