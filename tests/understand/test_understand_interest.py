"""Ranked affinities: the cut per kind, ties by text whatever the key ids, and consent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy import sparse

from adpilot.understand.interest import INTEREST_KINDS, KEEP, KINDS, Keys, list_matrix, ranked_affinities
from adpilot.understand.kernels import TIE_GRID


def keys_of(rows: list[tuple[str, str]]) -> Keys:
    return Keys.from_table(pa.table({"key_id": pa.array(range(len(rows)), pa.int32()),
                                     "kind": [k for k, _ in rows], "key": [t for _, t in rows]}))


def test_ranking_cuts_per_kind_and_breaks_ties_by_text() -> None:
    n_kw = KEEP["keyword"] + 5
    vocab = [("keyword", f"w{i:03d}") for i in reversed(range(n_kw))] + [("hour", "23"), ("hour", "9"),
                                                                          ("brand", "b"), ("brand", "a")]
    keys = keys_of(vocab)
    weights = np.r_[np.full(n_kw, 1.0), 3.0, 1.0, 2.0, 2.0]  # every keyword ties; brands tie
    total = sparse.csr_matrix(weights[None, :])
    out = ranked_affinities(total, np.array([True]), keys)
    assert out["keywords"].to_pylist() == [[f"w{i:03d}" for i in range(10)]]
    assert out["top_brands"].to_pylist() == [["a", "b"]]
    assert out["peak_hour"].to_pylist() == [23] and out["night_share"].to_pylist() == [0.75]
    assert out["top_categories"].to_pylist() == [None] and out["device"].to_pylist() == [None]
    stored = list_matrix(out["key_ids"], out["weights"], len(vocab))
    assert stored.nnz == KEEP["keyword"] + 4  # the five lightest keywords (by text) were cut
    assert stored[0, vocab.index(("keyword", "w000"))] == 1.0 and stored[0, vocab.index(("keyword", "w054"))] == 0


def test_without_consent_only_habits_remain() -> None:
    keys = keys_of([("category", "运动/篮球"), ("device", "ios"), ("hour", "21")])
    total = sparse.csr_matrix(np.array([[2.0, 1.0, 1.0], [2.0, 1.0, 1.0]]))
    out = ranked_affinities(total, np.array([True, False]), keys)
    assert out["top_categories"].to_pylist() == [["运动/篮球"], None]
    assert out["device"].to_pylist() == ["ios", "ios"] and out["peak_hour"].to_pylist() == [21, 21]
    assert [len(k) for k in out["key_ids"].to_pylist()] == [3, 2]


def reference_cut(total: sparse.csr_matrix, consent: np.ndarray, keys: Keys) -> list[list[tuple[str, float]]]:
    """The cut written plainly, user by user: (key text, weight) kept, kind by kind, heaviest first."""
    out = []
    for r in range(total.shape[0]):
        sums: dict[int, float] = {}
        for col, w in zip(total.indices[total.indptr[r]:total.indptr[r + 1]],
                          total.data[total.indptr[r]:total.indptr[r + 1]], strict=True):
            sums[int(col)] = sums.get(int(col), 0.0) + float(w)
        kept = []
        for kind_index, kind in enumerate(KINDS):
            if not consent[r] and kind in INTEREST_KINDS:
                continue
            mine = [(keys.text[c].as_py(), w) for c, w in sums.items() if keys.kind[c] == kind_index and w > 0]
            heaviest = max((w for _, w in mine), default=1.0)  # ties: within ~1e-12 of the heaviest, by text
            kept += sorted(mine, key=lambda kw: (round((1 - kw[1] / heaviest) * TIE_GRID), kw[0]))[:KEEP[kind]]
        out.append(kept)
    return out


def test_the_compiled_cut_equals_the_plain_one() -> None:
    rng = np.random.default_rng(5)
    vocab = ([("keyword", f"w{i:02d}") for i in rng.permutation(70)] + [("brand", f"b{i:02d}") for i in range(25)]
             + [("hour", str(h)) for h in range(24)] + [("category", f"c{i}") for i in range(3)])
    keys = keys_of(vocab)
    n, per_row = 40, 300  # ~60 keywords a user: past the insertion sort (48)
    cols = rng.integers(0, len(vocab), n * per_row)  # duplicates, unsorted
    data = rng.choice([-1.0, 0.5, 1.0, 2.0, 3.0], n * per_row) * rng.choice([1.0, 1.0 + 1e-13], n * per_row)
    total = sparse.csr_matrix((data, cols, np.arange(0, n * per_row + 1, per_row)), shape=(n, len(vocab)))
    consent = rng.random(n) < 0.7
    out = ranked_affinities(total, consent, keys)
    got = [[(keys.text[k].as_py(), w) for k, w in zip(ids, ws, strict=True)]
           for ids, ws in zip(out["key_ids"].to_pylist(), out["weights"].to_pylist(), strict=True)]
    want = reference_cut(total, consent, keys)
    assert [[k for k, _ in row] for row in got] == [[k for k, _ in row] for row in want]
    assert np.allclose([w for row in got for _, w in row], [w for row in want for _, w in row], rtol=1e-12)


def test_users_without_any_affinity() -> None:
    keys = keys_of([("category", "运动/篮球"), ("hour", "21")])
    out = ranked_affinities(sparse.csr_matrix((2, 2)), np.array([True, False]), keys)
    assert out["key_ids"].to_pylist() == [[], []] and out["keywords"].to_pylist() == [None, None]
    assert out["peak_hour"].to_pylist() == [None, None] and out["night_share"].to_pylist() == [0.0, 0.0]
