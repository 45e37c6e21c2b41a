"""Interest from a user's weighted sources: the interest vector and the ranked affinities.

A *source* is a product or a search/review text. The profile builder hands over one sparse (users x sources)
matrix ``W`` of anchored, event-weighted sums; from it

- the **interest vector** is ``W @ V`` (``V``: source vectors) added to the stored sum ``unit * norm`` and stored
  as its direction (int8 codes, :func:`~adpilot.understand.vectors.direction_codes`) with the sum's norm;
- the **affinities** are ``W @ F`` (``F``: source x key indicator — a product's category, brand and keywords, a
  text's keywords) plus the habit sums (device, geo, hour), added to the stored sums and cut back to the top
  ``KEEP[kind]`` keys per kind.

Sums, not means, are the sufficient statistic, so an update only adds. Stored affinities are the top ``KEEP``
per kind, not every key ever seen: a key below the cut that comes back starts again from the new batch's weight
(documented approximation; the cut is well above what the profile shows, ``SHOW``). The per-user loops are compiled
(:mod:`~adpilot.understand.kernels`), the rest is vectorised numpy/scipy over a chunk of users; nothing runs per
row in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from adpilot.store import Store
from adpilot.understand.kernels import interest_codes, top_per_kind
from adpilot.understand.vectors import codes_column, stored_unit_rows

KINDS = ("category", "brand", "keyword", "device", "geo", "hour")
INTEREST_KINDS = frozenset({"category", "brand", "keyword"})  # dropped without consent
KEEP = {"category": 20, "brand": 20, "keyword": 50, "device": 8, "geo": 8, "hour": 24}
SHOW = {"keyword": 10, "category": 5, "brand": 5}  # list columns of ``profiles``
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Keys:
    """The affinity key vocabulary, indexed by key id: kind index, text, rank in (kind, text) order and back, and
    which keys are night hours."""

    kind: np.ndarray
    text: pa.Array
    rank: np.ndarray
    by_rank: np.ndarray
    night: np.ndarray

    @classmethod
    def from_table(cls, table: pa.Table) -> Keys:
        """From (key_id, kind, key) rows with ids 0..n-1 (``profile_keys``)."""
        table = table.sort_by("key_id")
        kind = np.array([KINDS.index(k) for k in table.column("kind").to_pylist()], dtype=np.int64)
        by = pa.table({"kind": kind, "key": table.column("key")})
        order = pc.sort_indices(by, sort_keys=[("kind", "ascending"), ("key", "ascending")]).to_numpy()
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        text = table.column("key").combine_chunks()
        # in Arrow, once per batch: as numpy strings per chunk of users this cost 0.1 s a chunk
        night = (kind == KINDS.index("hour")) & pc.is_in(text, pa.array([str(h) for h in NIGHT_HOURS])).to_numpy(
            zero_copy_only=False)
        return cls(kind, text, rank, order, night)


def interest_vectors(weights: sparse.csr_matrix, sources: np.ndarray,
                     stored: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     consent: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """(directions as BLOBs of int8 codes, norms) of ``weights @ sources`` plus the stored sums; NULL for zero sums
    and no consent.

    ``stored`` holds parts ``(rows, codes, norms)``: the stored sum ``unit_rows(codes)[i] * norms[i]`` is added to
    row ``rows[i]``. Row by row, compiled (:func:`~adpilot.understand.kernels.interest_codes`): the chunk's float
    sums (138k x 384) never exist, and no step makes a temporary of its own (an e5 update's vector maths faulted
    in 1.4 GB with chunk-sized sums; in blocks of rows, numpy still took 0.5-0.8 s a chunk).
    """
    n = weights.shape[0]
    parts = list(stored)
    slot = np.full(n, -1, dtype=np.int64)  # row -> its stored sum, -1 for none
    old_codes, old_norms = np.empty((0, sources.shape[1]), np.int8), np.empty(0, np.float32)
    if parts:
        old_codes = np.concatenate([codes for _, codes, _ in parts])
        old_norms = np.concatenate([norms for _, _, norms in parts])
        slot[np.concatenate([rows for rows, _, _ in parts])] = np.arange(len(old_norms))
    codes, norms = interest_codes(weights.indptr, weights.indices, weights.data.astype(np.float32, copy=False),
                                  np.ascontiguousarray(sources, dtype=np.float32), slot, old_codes,
                                  old_norms.astype(np.float32, copy=False), np.asarray(consent, dtype=np.bool_))
    has = (norms > 0) & consent
    return codes_column(codes, has), pa.array(norms, mask=~has)


def list_matrix(keys: pa.ChunkedArray, values: pa.ChunkedArray, n_keys: int) -> sparse.csr_matrix:
    """Parallel list columns (key ids, weights), NULL = empty, as a (rows x n_keys) CSR matrix."""
    lengths = pc.fill_null(pc.list_value_length(keys), 0).to_numpy(zero_copy_only=False)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    cols = pc.list_flatten(keys).to_numpy(zero_copy_only=False).astype(np.int64)
    data = pc.list_flatten(values).to_numpy(zero_copy_only=False).astype(np.float64)
    return sparse.csr_matrix((data, cols, indptr), shape=(len(lengths), n_keys))


def ranked_affinities(total: sparse.csr_matrix, consent: np.ndarray, keys: Keys) -> dict[str, pa.Array]:
    """Cut ``total`` (users x keys sums) to the top ``KEEP`` per kind and derive the profile's readable columns.

    Returns the stored state (``key_ids``, ``weights``: per user, kind by kind, heaviest first) and the columns
    ``keywords``, ``top_categories``, ``top_brands`` (NULL when empty), ``device``, ``geo``, ``peak_hour``,
    ``night_share``. Ties (to about 1e-12 of the kind's heaviest) go to the key that sorts first, whatever the key ids.
    The cut itself is compiled (:func:`~adpilot.understand.kernels.top_per_kind`); what follows runs on its output.
    """
    n = total.shape[0]
    interest = np.isin(np.arange(len(KINDS)), [KINDS.index(k) for k in INTEREST_KINDS])
    cut = np.array([KEEP[k] for k in KINDS], dtype=np.int64)
    offsets, key_ids, weights, starts, sizes = top_per_kind(
        total.indptr, total.indices, total.data, keys.rank, keys.by_rank, keys.kind[keys.by_rank], cut,
        np.ascontiguousarray(consent, dtype=np.bool_), interest)
    out = {"key_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(key_ids)),
           "weights": pa.ListArray.from_arrays(pa.array(offsets), pa.array(weights))}
    for name, column in (("keyword", "keywords"), ("category", "top_categories"), ("brand", "top_brands")):
        lengths = np.minimum(sizes[:, KINDS.index(name)], SHOW[name])
        at = _run_positions(starts[:, KINDS.index(name)], lengths)
        out[column] = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32)),
                                               keys.text.take(pa.array(key_ids[at])), mask=pa.array(lengths == 0))
    for name in ("device", "geo", "hour"):
        has = sizes[:, KINDS.index(name)] > 0
        top = np.zeros(n, dtype=np.int32)
        top[has] = key_ids[starts[has, KINDS.index(name)]]
        out[name] = pc.if_else(pa.array(has), keys.text.take(pa.array(top)), pa.scalar(None, pa.string()))
    out["peak_hour"] = pc.cast(out.pop("hour"), pa.int32())
    lengths = sizes[:, KINDS.index("hour")]
    at = _run_positions(starts[:, KINDS.index("hour")], lengths)
    rows = np.repeat(np.arange(n), lengths)
    all_hours = np.bincount(rows, weights[at], minlength=n)
    night_sum = np.bincount(rows, weights[at] * keys.night[key_ids[at]], minlength=n)
    out["night_share"] = pa.array(np.divide(night_sum, all_hours, out=np.zeros(n), where=all_hours > 0))
    return out


def _run_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions of runs ``starts[i] .. starts[i] + lengths[i]``, run after run."""
    firsts = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64) - firsts, lengths) + np.arange(lengths.sum())


def load_interest_vectors(store: Store, users: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(user ids, float32 unit rows) of every profile with an interest vector, or of ``users`` among them.

    Sorted by user id in numpy, not in DuckDB: an ORDER BY moving a million vectors cost more than the scan.
    """
    sql = "SELECT user_id, interest_vector FROM profiles WHERE interest_vector IS NOT NULL"
    if users is not None:
        wanted = pa.table({"user_id": pa.array(users, pa.string())})  # noqa: F841
        sql += " AND user_id IN (SELECT user_id FROM wanted)"
    table = store.con.sql(sql).to_arrow_table()
    if table.num_rows == 0:
        return [], np.empty((0, 0), dtype=np.float32)
    order = pc.sort_indices(table.column("user_id")).to_numpy()
    return (table.column("user_id").take(order).to_pylist(),  # the codes taken in order: smaller than the floats
            stored_unit_rows(table.column("interest_vector").take(order)))
