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
(documented approximation; the cut is well above what the profile shows, ``SHOW``). Everything is vectorised
numpy/scipy over a chunk of users; nothing runs per row in Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from adpilot.store import Store
from adpilot.understand.vectors import codes_column, direction_codes, stored_unit_rows

KINDS = ("category", "brand", "keyword", "device", "geo", "hour")
INTEREST_KINDS = frozenset({"category", "brand", "keyword"})  # dropped without consent
KEEP = {"category": 20, "brand": 20, "keyword": 50, "device": 8, "geo": 8, "hour": 24}
SHOW = {"keyword": 10, "category": 5, "brand": 5}  # list columns of ``profiles``
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4, 5)
_BLOCK = 8192  # rows of a (rows x dim) temporary
_RANK_ROWS = 16_384  # users ranked at a time (see ranked_affinities)


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
    row ``rows[i]``. The sums are made, coded and dropped a block of rows at a time: the chunk's float sums
    (138k x 384) never exist at once, and the blocks' temporaries are reused memory, not fresh pages (an e5
    update's vector maths faulted in 1.4 GB with chunk-sized sums).
    """
    n = weights.shape[0]
    parts = list(stored)
    slot = np.full(n, -1, dtype=np.int64)  # row -> its stored sum, -1 for none
    old_codes, old_norms = np.empty((0, sources.shape[1]), np.int8), np.empty(0, np.float32)
    if parts:
        old_codes = np.concatenate([codes for _, codes, _ in parts])
        old_norms = np.concatenate([norms for _, _, norms in parts])
        slot[np.concatenate([rows for rows, _, _ in parts])] = np.arange(len(old_norms))
    codes = np.zeros((n, sources.shape[1]), dtype=np.int8)
    norms = np.zeros(n, dtype=np.float64)
    for s in range(0, n, _BLOCK):
        total = np.asarray(weights[s:s + _BLOCK] @ sources, dtype=np.float32)
        at = slot[s:s + _BLOCK]
        has_old = np.flatnonzero(at >= 0)
        if len(has_old):
            old = old_codes[at[has_old]].astype(np.float32)
            lengths = np.sqrt(np.einsum("ij,ij->i", old, old))
            old *= np.divide(old_norms[at[has_old]], lengths, out=np.zeros_like(lengths), where=lengths > 0)[:, None]
            total[has_old] += old
        norms[s:s + _BLOCK] = np.sqrt(np.einsum("ij,ij->i", total, total, dtype=np.float64))
        codes[s:s + _BLOCK] = direction_codes(total, consent[s:s + _BLOCK])
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
    ``night_share``. Ties (to about 1e-9 of the kind's heaviest) go to the key that sorts first, whatever the key ids.

    Users are ranked ``_RANK_ROWS`` at a time: the temporaries of a 138k-user chunk (6M sums) were fresh memory
    each time, and the system time of faulting it in (1-2 CPU-s per 1M-event update) cost more than the ranking's
    own 0.6 CPU-s per chunk; blocks of 16k users reuse theirs. The blocks' columns are joined into one array
    each: as many Arrow chunks, DuckDB inserted them in parallel (the build's writes took 4 CPU-s more).
    """
    parts = [_ranked_rows(total[s:s + _RANK_ROWS], consent[s:s + _RANK_ROWS], keys)
             for s in range(0, total.shape[0], _RANK_ROWS)] or [_ranked_rows(total, consent, keys)]
    if len(parts) == 1:
        return parts[0]
    return {name: pa.concat_arrays([part.pop(name) for part in parts]) for name in list(parts[0])}


def _ranked_rows(total: sparse.csr_matrix, consent: np.ndarray, keys: Keys) -> dict[str, pa.Array]:
    """:func:`ranked_affinities` of one block of users (``total`` is changed: its duplicates summed)."""
    # columns renumbered by (kind, text) rank: per row, the sorted CSR then runs kind by kind, ties by text
    total = sparse.csr_matrix((total.data, keys.rank[total.indices], total.indptr), shape=total.shape)
    total.sum_duplicates()
    n = total.shape[0]
    kind_of = keys.kind[keys.by_rank].astype(np.int8)  # by rank
    all_rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(total.indptr))
    all_kind = kind_of[total.indices]
    keep = total.data > 0
    if not consent.all():
        interest = np.isin(np.arange(len(KINDS)), [KINDS.index(k) for k in INTEREST_KINDS])
        keep &= consent[all_rows] | ~interest[all_kind]
    # one index into the entries is carried through the sort and the cut: fewer passes over the big arrays
    at = np.flatnonzero(keep)
    group = all_rows[at].astype(np.int64) * len(KINDS) + all_kind[at]  # non-decreasing
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, len(group)])
    if len(group):  # heaviest first within a group: a stable sort on group + a share in [0, 0.5) (near-sorted)
        weight = total.data[at]
        share = weight / np.repeat(np.maximum.reduceat(weight, starts), sizes)
        at = at[np.argsort(group + 0.5 * (1.0 - share), kind="stable")]  # moves entries within groups only
    rank = np.arange(len(group)) - np.repeat(starts, sizes)
    cut = np.array([KEEP[k] for k in KINDS])
    keep = rank < cut[all_kind[at]]
    at, rank = at[keep], rank[keep]
    rows, kind, weight = all_rows[at], all_kind[at], total.data[at]
    cols = keys.by_rank[total.indices[at]]
    offsets = _offsets(rows, n)
    out = {"key_ids": pa.ListArray.from_arrays(offsets, pa.array(cols.astype(np.int32))),
           "weights": pa.ListArray.from_arrays(offsets, pa.array(weight))}
    for name, column in (("keyword", "keywords"), ("category", "top_categories"), ("brand", "top_brands")):
        pick = (kind == KINDS.index(name)) & (rank < SHOW[name])
        counts = np.bincount(rows[pick], minlength=n)
        out[column] = pa.ListArray.from_arrays(_offsets(rows[pick], n), keys.text.take(pa.array(cols[pick])),
                                               mask=pa.array(counts == 0))
    for name in ("device", "geo", "hour"):
        pick = (kind == KINDS.index(name)) & (rank == 0)
        top = np.zeros(n, dtype=np.int64)
        top[rows[pick]] = cols[pick]
        has = np.zeros(n, dtype=bool)
        has[rows[pick]] = True
        out[name] = pc.if_else(pa.array(has), keys.text.take(pa.array(top)), pa.scalar(None, pa.string()))
    out["peak_hour"] = pc.cast(out.pop("hour"), pa.int32())
    hours = kind == KINDS.index("hour")
    night = keys.night[cols]
    all_hours = np.bincount(rows[hours], weight[hours], minlength=n)
    night_sum = np.bincount(rows[night], weight[night], minlength=n)
    out["night_share"] = pa.array(np.divide(night_sum, all_hours, out=np.zeros(n), where=all_hours > 0))
    return out


def _offsets(sorted_rows: np.ndarray, n: int) -> pa.Array:
    """List offsets of ``n`` rows from the (sorted) row index of every value."""
    return pa.array(np.concatenate([[0], np.cumsum(np.bincount(sorted_rows, minlength=n))]).astype(np.int32))


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
