"""Turn a table of raw columns into the arrays a model eats: hashed ids, padded sequences, dense, vectors.

Numpy and pandas only, because the serving scorer runs this very code without torch. Categories are hashed
(``pandas.util.hash_array`` of the value's text, a fixed SipHash key), so the same value maps to the same bucket
in training and serving, in every process, with no vocabulary file; ``5`` and ``"5"`` are the same category.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adpilot.errors import UserError
from adpilot.rank.base import FeatureSpec


@dataclass(frozen=True)
class Encoded:
    """Model inputs for ``n`` rows.

    ``ids`` int64 ``[n, F]`` (global row in the shared embedding table), ``seqs`` int64 ``[n, S, L]`` (0 = pad),
    ``dense`` float32 ``[n, D]``, ``vectors`` float32 ``[n, V]`` (all vector fields side by side).
    """

    ids: np.ndarray
    seqs: np.ndarray
    dense: np.ndarray
    vectors: np.ndarray

    def __len__(self) -> int:
        return self.ids.shape[0]

    def take(self, index: np.ndarray | slice) -> Encoded:
        """Rows ``index``, with sequences cut to the longest history among them (the rest is padding)."""
        seqs = self.seqs[index]
        if seqs.shape[1] and seqs.shape[2]:
            longest = int((seqs[:, 0] > 0).sum(axis=1).max(initial=0))
            seqs = seqs[:, :, :max(longest, 1)]
        return Encoded(self.ids[index], seqs, self.dense[index], self.vectors[index])


def _raw_hash(values: Iterable[object] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash of each value's text, and which values are present (not None/NaN)."""
    arr = np.asarray(values, dtype=object)
    raw = np.zeros(arr.shape[0], dtype=np.uint64)
    present = ~pd.isna(arr)
    if present.any():
        text = np.array([str(v) for v in arr[present]], dtype=object)
        raw[present] = pd.util.hash_array(text, categorize=False).astype(np.uint64)
    return raw, present


def _bucket(raw: np.ndarray, present: np.ndarray, n_buckets: int) -> np.ndarray:
    return np.where(present, (raw % np.uint64(n_buckets - 1)).astype(np.int64) + 1, 0)


def hash_bucket(values: Iterable[object] | np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of each value in ``[1, n_buckets)``; missing values (None/NaN) get 0.

    >>> hash_bucket(["a", "b", None, "a"], 100).tolist()[2]
    0
    >>> bool(hash_bucket([5], 1000)[0] == hash_bucket(["5"], 1000)[0])
    True
    """
    return _bucket(*_raw_hash(values), n_buckets)


def _column(frame: Mapping[str, object], name: str, n: int, strict: bool) -> object | None:
    if name in frame:
        return frame[name]
    if strict:
        raise UserError(f"input is missing column `{name}` (columns present: {sorted(frame)[:20]})")
    return None


class FeatureEncoder:
    """Hash, pad and standardise columns per a :class:`FeatureSpec`; learns only dense means/stds.

    ``strict`` (training) makes a missing column an error; serving passes ``strict=False`` and a missing
    column is treated as all-missing.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        sizes = [spec.n_buckets(c) for c in spec.categorical]
        self.offsets_ = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0,
                                                                                                             np.int64)
        self.n_rows_ = int(sum(sizes))
        self.field_index_ = {c: i for i, c in enumerate(spec.categorical)}
        self.mean_ = np.zeros(len(spec.dense), np.float64)
        self.std_ = np.ones(len(spec.dense), np.float64)

    def fit_dense(self, frames: Iterable[pd.DataFrame]) -> FeatureEncoder:
        """Streaming mean/std of the dense columns (one pass; frames may come from a larger-than-memory file)."""
        if not self.spec.dense:
            return self
        count = np.zeros(len(self.spec.dense))
        total = np.zeros(len(self.spec.dense))
        squares = np.zeros(len(self.spec.dense))
        for frame in frames:
            values = self._dense_raw(frame, len(frame), strict=True)
            seen = ~np.isnan(values)
            count += seen.sum(0)
            total += np.where(seen, values, 0).sum(0)
            squares += np.where(seen, values, 0).astype(np.float64).__pow__(2).sum(0)
        count = np.maximum(count, 1)
        self.mean_ = total / count
        self.std_ = np.sqrt(np.maximum(squares / count - self.mean_**2, 0)) + 1e-6
        return self

    def _dense_raw(self, frame: Mapping[str, object], n: int, strict: bool) -> np.ndarray:
        out = np.full((n, len(self.spec.dense)), np.nan, np.float64)
        for j, name in enumerate(self.spec.dense):
            col = _column(frame, name, n, strict)
            if col is not None:
                try:
                    out[:, j] = np.broadcast_to(np.asarray(col, dtype=np.float64), (n,))
                except (TypeError, ValueError) as error:
                    raise UserError(f"dense column `{name}` must hold numbers ({error})") from None
        return out

    def encode(self, frame: Mapping[str, object], n: int | None = None, strict: bool = True) -> Encoded:
        """Arrays for the rows of ``frame``: a DataFrame, or a mapping of equal-length columns in which a
        categorical or dense scalar, or a single vector, broadcasts over ``n`` rows."""
        if n is None:
            n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))
        spec = self.spec
        ids = self._ids(frame, n, strict)
        seqs = np.zeros((n, len(spec.sequences), spec.max_seq_len), np.int64)
        for s, (name, target) in enumerate(spec.sequences):
            col = _column(frame, name, n, strict)
            j = self.field_index_[target]
            if col is not None:
                seqs[:, s] = self._pad(col, n, spec.n_buckets(target))
            seqs[:, s] = np.where(seqs[:, s] > 0, seqs[:, s] + self.offsets_[j], 0)
        dense = (self._dense_raw(frame, n, strict) - self.mean_) / self.std_
        dense = np.nan_to_num(dense, nan=0.0).astype(np.float32)
        return Encoded(ids, seqs, dense, self._vectors(frame, n, strict))

    def _ids(self, frame: Mapping[str, object], n: int, strict: bool) -> np.ndarray:
        """Hashed categorical fields ``[n, F]`` with table offsets; every field's values go through one hash
        call (per-call overhead dominates when scoring a few hundred candidates)."""
        spec = self.spec
        parts, where = [], []
        for j, name in enumerate(spec.categorical):
            col = _column(frame, name, n, strict)
            if col is not None:
                values = np.asarray(col, dtype=object)
                parts.append(values.reshape(-1))
                where.append((j, values.ndim == 0))
        ids = np.zeros((n, len(spec.categorical)), np.int64)
        if parts:
            raw, present = _raw_hash(np.concatenate(parts))
            start = 0
            for (j, scalar), part in zip(where, parts, strict=True):
                stop = start + len(part)
                buckets = _bucket(raw[start:stop], present[start:stop], spec.n_buckets(spec.categorical[j]))
                ids[:, j] = buckets[0] if scalar else buckets
                start = stop
        return ids + self.offsets_

    def _pad(self, col: object, n: int, n_buckets: int) -> np.ndarray:
        """Hash each row's list (None = empty) and keep its last ``max_seq_len`` items, left-aligned, 0-padded."""
        rows = list(col)
        if len(rows) != n:
            raise UserError(f"sequence column must hold one list per row ({n}), got {len(rows)}")
        limit = self.spec.max_seq_len
        if n > 1 and all(r is rows[0] for r in rows):  # one user's history broadcast over candidates
            return np.repeat(self._pad([rows[0]], 1, n_buckets), n, axis=0)
        rows = [[] if r is None else list(r)[-limit:] for r in rows]
        lengths = np.array([len(r) for r in rows], np.int64)
        out = np.zeros((n, limit), np.int64)
        if lengths.sum():
            flat = hash_bucket([v for r in rows for v in r], n_buckets)
            mask = np.arange(limit)[None, :] < lengths[:, None]
            out[mask] = flat
        return out

    def _vectors(self, frame: Mapping[str, object], n: int, strict: bool) -> np.ndarray:
        parts = []
        for name, dim in self.spec.vectors:
            col = _column(frame, name, n, strict)
            if col is None:
                parts.append(np.zeros((n, dim), np.float32))
                continue
            arr = np.asarray(col.tolist() if isinstance(col, pd.Series) else col, dtype=np.float32)
            arr = np.broadcast_to(arr, (n, dim)) if arr.ndim == 1 else arr
            if arr.shape != (n, dim):
                raise UserError(f"vector column `{name}` must have shape ({n}, {dim}), got {arr.shape}")
            if np.isnan(arr).any():
                raise UserError(f"vector column `{name}` contains NaN (is its encoder broken?)")
            parts.append(arr)
        return np.concatenate(parts, axis=1) if parts else np.zeros((n, 0), np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"dense_mean": self.mean_, "dense_std": self.std_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> FeatureEncoder:
        self.mean_ = np.asarray(state["dense_mean"], np.float64)
        self.std_ = np.asarray(state["dense_std"], np.float64)
        return self
