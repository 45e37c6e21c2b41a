"""The snapshot's users as columnar arrays: interest vectors, consent, segment, purchases and recent items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.errors import UserError
from adpilot.understand.vectors import stored_rows, unit_rows


@dataclass(frozen=True)
class UserTable:
    """Profiles (row = user): interest vectors may be float16 to halve memory; purchases/recents in CSR form."""

    index: dict[str, int]
    vectors: np.ndarray  # (n, d)
    has_vector: np.ndarray
    consent: np.ndarray  # personalised ads allowed
    segment: np.ndarray  # object: segment key or None
    purchased_ptr: np.ndarray
    purchased: np.ndarray  # product rows (-1 for products unknown to the snapshot)
    recent_ptr: np.ndarray
    recent: np.ndarray  # product rows, most recent last (-1 for products unknown to the snapshot)

    def __len__(self) -> int:
        return len(self.index)


def _list_column(table: pa.Table, name: str, n: int) -> tuple[np.ndarray, pa.Array]:
    """(ptr (n+1,), flat values) of a list column; missing column or null lists are empty."""
    if name not in table.column_names:
        return np.zeros(n + 1, dtype=np.int64), pa.array([], pa.string())
    col = table.column(name).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr, pc.list_flatten(col)


def user_table(profiles: Any, users: Any, product_index: dict[str, int], dim: int, dtype: type) -> UserTable:
    """The snapshot's users from the stored ``profiles`` (vectors normalised, in ``dtype``) and ``users`` (consent);
    an interest vector of another length than the ads' ``dim`` is refused, naming the profile."""
    if profiles is None:
        profiles = pa.table({"user_id": pa.array([], pa.string())})
    table = pa.Table.from_pandas(profiles, preserve_index=False) if isinstance(profiles, pd.DataFrame) else profiles
    ids = table.column("user_id").to_pylist()
    n = len(ids)
    vectors: np.ndarray = np.zeros((n, dim), dtype=dtype)
    has_vector = np.zeros(n, dtype=bool)
    if "interest_vector" in table.column_names and n:
        lengths, values = stored_rows(table.column("interest_vector"), dim)
        has_vector = lengths == dim
        bad = (lengths != 0) & (lengths != dim)
        if bad.any():
            raise UserError(f"profile {ids[int(np.argmax(bad))]!r} has an interest_vector of length "
                            f"{int(lengths[bad][0])}, the ads' vectors have {dim}")
        rows = np.flatnonzero(has_vector)
        for s in range(0, len(rows), 65_536):  # in chunks: 1M profiles never need a second full float32 copy
            vectors[rows[s:s + 65_536]] = unit_rows(values[s:s + 65_536]).astype(dtype)
    segment = np.full(n, None, dtype=object)
    if "segment_id" in table.column_names:
        seg = table.column("segment_id").to_pylist()
        segment[:] = [None if s is None else str(s) for s in seg]
    consent = np.ones(n, dtype=bool)
    if users is not None:
        u = users.to_pandas() if isinstance(users, pa.Table) else users
        flags = pd.Series(True, index=u["user_id"])
        for col in ("consent_personalisation", "consent_ads"):
            if col in u.columns:
                flags &= u[col].astype("boolean").fillna(True).to_numpy(dtype=bool)
        consent = flags.reindex(ids, fill_value=True).to_numpy(dtype=bool)
    purchased_ptr, purchased_flat = _list_column(table, "purchased_items", n)
    products = pd.Index(list(product_index))
    purchased = products.get_indexer(purchased_flat.to_pandas()).astype(np.int64)
    recent_ptr, recent_flat = _list_column(table, "recent_items", n)
    recent = products.get_indexer(recent_flat.to_pandas()).astype(np.int64)
    return UserTable(index={u: i for i, u in enumerate(ids)}, vectors=vectors, has_vector=has_vector,
                     consent=consent, segment=segment, purchased_ptr=purchased_ptr, purchased=purchased,
                     recent_ptr=recent_ptr, recent=recent)
