"""Turn a table of raw columns into the arrays a model eats: hashed ids, padded sequences, dense, vectors.

Numpy and pandas only, because the serving scorer runs this very code without torch. Categories are hashed
(``pandas.util.hash_array`` of the value's text, a fixed SipHash key), so the same value maps to the same bucket
in training and serving, in every process, with no vocabulary file; ``5`` and ``"5"`` are the same category.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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


MEMO_LIMIT = 2**20
"""Values of a kind (strings, integers) a serving encoder remembers per bucket count before it forgets them all
(memory stays bounded)."""


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


def _memo_keys(values: object) -> np.ndarray | list | None:
    """The values as memo keys when all are strings or all are integers (their text, hence their hash, is then a
    function of the key): an int64 array when the integers fit, else a list; ``None`` for anything else (floats
    and bools never enter the memo: ``5 == 5.0 == True`` as keys but their texts differ)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        flat = values.reshape(-1)
        return flat.astype(np.int64, copy=False) if np.can_cast(flat.dtype, np.int64) else flat.tolist()
    if type(values) in (str, int):
        return [values]
    if isinstance(values, list):  # a history: its element types are cheaper to check than ``infer_dtype``
        types = set(map(type, values))
        if all(issubclass(t, str) for t in types):
            return values
        if all(t is int or issubclass(t, np.integer) for t in types):
            ints = np.array(values)
            return ints if ints.dtype.kind == "i" else values  # beyond int64 (or mixed signedness): the dict
        return None
    arr = np.asarray(values, dtype=object).reshape(-1)
    return arr.tolist() if pd.api.types.infer_dtype(arr, skipna=False) in ("string", "integer") else None


class BucketMemo:
    """Buckets of the values seen so far, for one bucket count (serving: the same ads and items come back request
    after request, so only new values are hashed). Integers go through a sorted array looked up by one
    ``searchsorted`` (~2x cheaper than a dict lookup per value for a few hundred candidates), strings through a dict
    of strings only, so that a column whose values are all found in it needs no type check (only a string equals
    a string), other integers (scalars, beyond int64) through a dict of their own. Each part forgets everything
    once it holds more than :data:`MEMO_LIMIT` values (memory stays bounded)."""

    def __init__(self, n_buckets: int) -> None:
        self.n_buckets = n_buckets
        self.strings: dict[str, int] = {}
        self.numbers: dict[int, int] = {}
        self.ints = np.zeros(0, np.int64)  # sorted
        self.int_buckets = np.zeros(0, np.int64)

    def buckets(self, values: object) -> np.ndarray:
        """:func:`hash_bucket` of a column (or a scalar, as one value); memoised when the values are all
        strings or all integers."""
        if isinstance(values, np.ndarray) and values.dtype == object:  # ids as text, usually all seen before
            found = list(map(self.strings.get, values.reshape(-1).tolist()))
            if None not in found:
                return np.fromiter(found, np.int64, len(found))
        keys = _memo_keys(values)
        if keys is None:
            return hash_bucket(np.asarray(values, dtype=object).reshape(-1), self.n_buckets)
        if isinstance(keys, np.ndarray):
            return self._int_buckets(keys)
        memo = self.strings if keys and isinstance(keys[0], str) else self.numbers  # keys are of one kind
        found = list(map(memo.get, keys))
        if None in found:
            new = list(dict.fromkeys(v for v, b in zip(keys, found, strict=True) if b is None))
            if len(memo) > MEMO_LIMIT:
                memo.clear()
            memo.update(zip(new, hash_bucket(new, self.n_buckets).tolist(), strict=True))
            found = list(map(memo.__getitem__, keys))
        return np.fromiter(found, np.int64, len(found))

    def _int_buckets(self, keys: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.ints, keys)
        if len(self.ints):
            if (self.ints.take(pos, mode="clip") == keys).all():
                return self.int_buckets[pos]
            keys_new = np.setdiff1d(keys, self.ints)
        else:
            keys_new = np.unique(keys)
        if len(self.ints) + len(keys_new) > MEMO_LIMIT:  # start over with this call's values
            self.ints, self.int_buckets, keys_new = np.zeros(0, np.int64), np.zeros(0, np.int64), np.unique(keys)
        merged = np.concatenate([self.ints, keys_new])
        order = np.argsort(merged, kind="stable")
        self.ints = merged[order]
        self.int_buckets = np.concatenate([self.int_buckets, hash_bucket(keys_new, self.n_buckets)])[order]
        return self.int_buckets[np.searchsorted(self.ints, keys)]


def hash_bucket(values: Iterable[object] | np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of each value in ``[1, n_buckets)``; missing values (None/NaN) get 0.

    >>> hash_bucket(["a", "b", None, "a"], 100).tolist()[2]
    0
    >>> bool(hash_bucket([5], 1000)[0] == hash_bucket(["5"], 1000)[0])
    True
    """
    return _bucket(*_raw_hash(values), n_buckets)


def _memo_for(memo: dict[int, BucketMemo], n_buckets: int) -> BucketMemo:
    """The memo of one table size, made on first use."""
    if n_buckets not in memo:
        memo[n_buckets] = BucketMemo(n_buckets)
    return memo[n_buckets]


def _column(frame: Mapping[str, Any], name: str, n: int, strict: bool) -> Any:
    if name in frame:
        return frame[name]
    if strict:
        raise UserError(f"input is missing column `{name}` (columns present: {sorted(frame)[:20]})")
    return None


class FeatureEncoder:
    """Hash, pad and standardise columns per a :class:`FeatureSpec`; learns only dense means/stds.

    ``strict`` (training) makes a missing column an error; serving passes ``strict=False`` and a missing
    column is treated as all-missing. ``memoize`` (serving) remembers each value's hash.
    """

    def __init__(self, spec: FeatureSpec, memoize: bool = False) -> None:
        self.spec = spec
        self.memo: dict[int, BucketMemo] | None = {} if memoize else None  # by bucket count
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

    def _dense_raw(self, frame: Mapping[str, Any], n: int, strict: bool) -> np.ndarray:
        out = np.full((n, len(self.spec.dense)), np.nan, np.float64)
        for j, name in enumerate(self.spec.dense):
            col = _column(frame, name, n, strict)
            if col is not None:
                try:
                    out[:, j] = np.broadcast_to(np.asarray(col, dtype=np.float64), (n,))
                except (TypeError, ValueError) as error:
                    raise UserError(f"dense column `{name}` must hold numbers ({error})") from None
        return out

    def encode(self, frame: Mapping[str, Any], n: int | None = None, strict: bool = True) -> Encoded:
        """Arrays for the rows of ``frame``: a DataFrame, or a mapping of equal-length columns in which a
        categorical or dense scalar, or a single vector, broadcasts over ``n`` rows."""
        if n is None:
            n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))
        spec = self.spec
        ids = self._ids(frame, n, strict)
        seqs = np.zeros((n, len(spec.sequences), spec.max_seq_len), np.int64)
        for s, (name, target) in enumerate(spec.sequences):
            col = _column(frame, name, n, strict)
            if col is not None:
                padded = self._pad(col, n, spec.n_buckets(target))
                seqs[:, s] = np.where(padded > 0, padded + self.offsets_[self.field_index_[target]], 0)
        dense = np.zeros((n, 0), np.float32)
        if spec.dense:
            dense = (self._dense_raw(frame, n, strict) - self.mean_) / self.std_
            dense = np.where(np.isnan(dense), 0.0, dense).astype(np.float32)
        return Encoded(ids, seqs, dense, self._vectors(frame, n, strict))

    def _ids(self, frame: Mapping[str, Any], n: int, strict: bool) -> np.ndarray:
        """Hashed categorical fields ``[n, F]`` with table offsets."""
        spec = self.spec
        columns = [(j, col) for j, name in enumerate(spec.categorical)
                   if (col := _column(frame, name, n, strict)) is not None]
        ids = np.zeros((n, len(spec.categorical)), np.int64)
        if self.memo is not None:  # per column, so that each can take the memo
            for j, col in columns:
                ids[:, j] = _memo_for(self.memo, spec.n_buckets(spec.categorical[j])).buckets(col)
        elif columns:  # one hash call for all columns: per-call overhead dominates for a few hundred rows
            parts = [np.asarray(col, dtype=object).reshape(-1) for _, col in columns]
            raw, present = _raw_hash(np.concatenate(parts))
            start = 0
            for (j, _), part in zip(columns, parts, strict=True):
                stop = start + len(part)
                ids[:, j] = _bucket(raw[start:stop], present[start:stop], spec.n_buckets(spec.categorical[j]))
                start = stop
        return ids + self.offsets_

    def _pad(self, col: Iterable[Any], n: int, n_buckets: int) -> np.ndarray:
        """Hash each row's list (None = empty) and keep its last ``max_seq_len`` items, left-aligned, 0-padded."""
        rows = list(col)
        if len(rows) != n:
            raise UserError(f"sequence column must hold one list per row ({n}), got {len(rows)}")
        limit = self.spec.max_seq_len
        if n > 1 and all(r is rows[0] for r in rows):  # one user's history broadcast over candidates
            return np.repeat(self._pad([rows[0]], 1, n_buckets), n, axis=0)
        kept = [[] if r is None else list(r)[-limit:] for r in rows]
        out = np.zeros((n, limit), np.int64)
        flat = [v for r in kept for v in r]
        if flat:
            buckets = _memo_for(self.memo, n_buckets).buckets(flat) if self.memo is not None else hash_bucket(flat, n_buckets)
            if n == 1:  # the request's own history (serving): no mask to build
                out[0, :len(flat)] = buckets
            else:
                out[np.arange(limit)[None, :] < np.array([len(r) for r in kept])[:, None]] = buckets
        return out

    def _vectors(self, frame: Mapping[str, Any], n: int, strict: bool) -> np.ndarray:
        """All vector fields side by side, written straight into one array (no per-field zeros, no concatenate)."""
        out = np.empty((n, sum(dim for _, dim in self.spec.vectors)), np.float32)
        start = 0
        for name, dim in self.spec.vectors:
            start, columns = start + dim, slice(start, start + dim)
            col = _column(frame, name, n, strict)
            if col is None:
                out[:, columns] = 0
                continue
            arr = np.asarray(col.tolist() if isinstance(col, pd.Series) else col, dtype=np.float32)
            if arr.shape not in ((n, dim), (dim,)):  # one vector is written to every row
                raise UserError(f"vector column `{name}` must have shape ({n}, {dim}) or ({dim},), got {arr.shape}")
            if np.isnan(arr).any():
                raise UserError(f"vector column `{name}` contains NaN (is its encoder broken?)")
            out[:, columns] = arr
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"dense_mean": self.mean_, "dense_std": self.std_}

    def load_state(self, state: Mapping[str, np.ndarray]) -> FeatureEncoder:
        self.mean_ = np.asarray(state["dense_mean"], np.float64)
        self.std_ = np.asarray(state["dense_std"], np.float64)
        return self
