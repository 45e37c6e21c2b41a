"""The two per-user loops of a profile chunk, compiled (numba): the affinity cut and the interest vector sums.

Why compiled: in vectorised numpy each made many passes over the chunk's arrays with fresh temporaries — the cut a
dozen (renumber, sort, sum duplicates, group, argsort, cut: 0.67 CPU-s per 138k-user chunk), the vectors one per
step over blocks of 384 or 512 floats a user (0.5-0.8 s a chunk) — and they were the update's worker thread, its
critical path. Here each user is one pass over a small scratch buffer, and only the outputs are allocated
(0.20 and 0.19 s a chunk). Compiled once per machine (~6 s) and cached beside the module (``cache=True``; numba
falls back to a user cache directory, or ``NUMBA_CACHE_DIR``, where the package is read-only); ``nogil``, so the
worker thread runs beside DuckDB's.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Shares of the kind's heaviest closer than 1 / TIE_GRID (~1e-12) count as equal: far above the rounding of sums
# added in another order (update vs rebuild), far below a real difference (events a second apart).
TIE_GRID = 2.0 ** 40
_SUMS = {"reassoc", "contract", "nsz", "arcp"}  # vector sums may be reordered and fused (SIMD); finite not assumed
_SMALL = 48  # runs up to this length are insertion-sorted


@njit(cache=True, nogil=True)
def top_per_kind(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rank_of: np.ndarray,
                 key_of_rank: np.ndarray, kind_of_rank: np.ndarray, cut: np.ndarray, consent: np.ndarray,
                 interest: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of the CSR sums over key ids (duplicates allowed, any order), the heaviest ``cut[kind]`` keys of
    each kind: (row offsets, key ids, weights, start and length of each (row, kind) run).

    Duplicates are summed; sums <= 0 and — without ``consent`` — the ``interest`` kinds are dropped. Within a
    kind, heaviest first, ties (to ~1e-12 of the kind's heaviest) to the key whose rank (``rank_of``: (kind, text)
    order) is lower. A row's sums go to a dense scratch row indexed by rank, its keys to a list per kind; each
    kind's few keys are then sorted by (quantised share, rank).
    """
    n = len(indptr) - 1
    n_kinds = len(cut)
    acc = np.zeros(len(rank_of), np.float64)
    seen = np.zeros(len(rank_of), np.bool_)
    longest = 1
    for r in range(n):
        longest = max(longest, indptr[r + 1] - indptr[r])
    bucket = np.empty((n_kinds, longest), np.int64)
    filled = np.zeros(n_kinds, np.int64)
    shares = np.empty(longest, np.int64)
    ranks = np.empty(longest, np.int64)
    offsets = np.empty(n + 1, np.int32)
    key_ids = np.empty(indptr[n], np.int32)
    weights = np.empty(indptr[n], np.float64)
    starts = np.empty((n, n_kinds), np.int32)
    sizes = np.zeros((n, n_kinds), np.int32)
    m = 0
    offsets[0] = 0
    for r in range(n):
        for j in range(indptr[r], indptr[r + 1]):
            rank = rank_of[indices[j]]
            if not seen[rank]:
                seen[rank] = True
                kind = kind_of_rank[rank]
                bucket[kind, filled[kind]] = rank
                filled[kind] += 1
            acc[rank] += data[j]
        for kind in range(n_kinds):
            heaviest = 0.0
            for i in range(filled[kind]):
                heaviest = max(heaviest, acc[bucket[kind, i]])
            size = 0
            if consent[r] or not interest[kind]:
                for i in range(filled[kind]):
                    rank = bucket[kind, i]
                    if acc[rank] > 0:
                        shares[size] = np.int64((1.0 - acc[rank] / heaviest) * TIE_GRID + 0.5)
                        ranks[size] = rank
                        size += 1
            _sort_pairs(shares, ranks, size)
            starts[r, kind] = m
            sizes[r, kind] = min(size, cut[kind])
            for i in range(sizes[r, kind]):
                rank = ranks[i]
                key_ids[m] = key_of_rank[rank]
                weights[m] = acc[rank]
                m += 1
            for i in range(filled[kind]):
                rank = bucket[kind, i]
                acc[rank] = 0.0
                seen[rank] = False
            filled[kind] = 0
        offsets[r + 1] = m
    return offsets, key_ids[:m], weights[:m], starts, sizes


@njit(cache=True, nogil=True)
def _sort_pairs(first: np.ndarray, second: np.ndarray, size: int) -> None:
    """Sort the first ``size`` pairs (first[i], second[i]) in place (a kind holds tens of keys; longer runs fall
    back to a sort)."""
    if size > _SMALL:
        at = np.argsort(second[:size], kind="mergesort")
        at = at[np.argsort(first[:size][at], kind="mergesort")]  # stable: by first, then second
        first[:size], second[:size] = first[:size][at], second[:size][at]
        return
    for i in range(1, size):
        f, s = first[i], second[i]
        j = i - 1
        while j >= 0 and (first[j] > f or (first[j] == f and second[j] > s)):
            first[j + 1], second[j + 1] = first[j], second[j]
            j -= 1
        first[j + 1], second[j + 1] = f, s


@njit(cache=True, nogil=True, fastmath=_SUMS)
def interest_codes(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, sources: np.ndarray,
                   slot: np.ndarray, old_codes: np.ndarray, old_norms: np.ndarray,
                   keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the sum of its weighted source rows (CSR ``data`` over ``sources``) plus its stored sum — the unit
    row of ``old_codes[slot]`` times ``old_norms[slot]``, none where ``slot`` < 0 — as (direction codes, norm).

    Codes as :func:`~adpilot.understand.vectors.direction_codes` makes them (largest component +-127), all 0 for
    a zero sum or a row not in ``keep``; the norm in float64 whatever ``keep`` says. Sums in float32.
    """
    n, dim = len(indptr) - 1, sources.shape[1]
    codes = np.zeros((n, dim), np.int8)
    norms = np.zeros(n, np.float64)
    total = np.empty(dim, np.float32)
    for r in range(n):
        total[:] = 0.0
        for j in range(indptr[r], indptr[r + 1]):
            w = np.float32(data[j])
            row = sources[indices[j]]
            for c in range(dim):
                total[c] += w * row[c]
        if slot[r] >= 0:
            old = old_codes[slot[r]]
            length = np.int64(0)
            for c in range(dim):
                length += np.int64(old[c]) * old[c]
            if length > 0:
                scale = np.float32(old_norms[slot[r]] / np.sqrt(np.float64(length)))
                for c in range(dim):
                    total[c] += np.float32(old[c]) * scale
        square = np.float64(0.0)
        for c in range(dim):
            square += np.float64(total[c]) * np.float64(total[c])
        peak = np.float32(0.0)
        for c in range(dim):
            peak = max(peak, abs(total[c]))
        norms[r] = np.sqrt(square)
        if keep[r] and peak > 0:
            scale = np.float32(127.0) / peak
            for c in range(dim):
                codes[r, c] = np.int8(np.rint(total[c] * scale))
    return codes, norms
