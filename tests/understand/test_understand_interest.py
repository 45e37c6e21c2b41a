"""Ranked affinities: the cut per kind, ties by text whatever the key ids, and consent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy import sparse

from adpilot.understand import interest
from adpilot.understand.interest import KEEP, Keys, list_matrix, ranked_affinities


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


def test_ranking_by_blocks_of_users_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    vocab = ([("keyword", f"w{i}") for i in range(60)] + [("brand", f"b{i}") for i in range(25)]
             + [("hour", str(h)) for h in range(24)])
    keys = keys_of(vocab)
    total = sparse.random(7, len(vocab), density=0.6, format="csr", random_state=3)
    consent = np.array([True, False, True, True, False, True, True])
    whole = ranked_affinities(total, consent, keys)
    monkeypatch.setattr(interest, "_RANK_ROWS", 3)  # blocks of 3, 3 and 1 users
    blocks = ranked_affinities(total, consent, keys)
    assert {name: column.to_pylist() for name, column in blocks.items()} == \
        {name: column.to_pylist() for name, column in whole.items()}
