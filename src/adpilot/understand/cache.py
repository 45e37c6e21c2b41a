"""Encoding through the store's ``embeddings`` table: a text is encoded once per encoder, ever.

The key is (encoder name, sha256 of kind + cleaned text), so the same words as a query and as a passage are two
entries (e5 embeds them differently) and a re-run over the same catalogue or the same searches encodes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from adpilot.store import Store
from adpilot.understand.base import Kind, TextEncoder, clean_text
from adpilot.understand.vectors import from_list_column, to_list_array


def text_hash(text: str, kind: Kind, max_chars: int) -> str:
    """The cache key of one text as ``kind`` after cleaning.

    >>> text_hash("a", "query", 10) == text_hash(" a ", "query", 10) != text_hash("a", "passage", 10)
    True
    """
    return hashlib.sha256(f"{kind}\n{clean_text(text, max_chars)}".encode()).hexdigest()


def encode_cached(store: Store, encoder: TextEncoder, texts: Sequence[str], kind: Kind = "passage",
                  chunk: int = 4096) -> np.ndarray:
    """Vectors of ``texts`` (n, dim) float32, encoding only those the store has not seen for this encoder.

    New vectors are written every ``chunk`` texts, so an interrupted run keeps what it paid for.
    """
    hashes = [text_hash(t, kind, encoder.max_chars) for t in texts]
    unique = dict(zip(hashes, texts, strict=True))
    known = _lookup(store, encoder.name, list(unique))
    missing = [h for h in unique if h not in known]
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        matrix = encoder.encode([unique[h] for h in part], kind=kind)
        _insert(store, encoder.name, part, matrix)
        known.update(zip(part, matrix, strict=True))
    if not hashes:
        return np.empty((0, encoder.dim), dtype=np.float32)
    return np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)


def _lookup(store: Store, name: str, hashes: list[str]) -> dict[str, np.ndarray]:
    if not hashes:
        return {}
    wanted = pa.table({"text_hash": pa.array(hashes, pa.string())})  # noqa: F841  (read by DuckDB by name)
    found = store.con.sql(
        "SELECT e.text_hash, e.dim, e.vector FROM embeddings e JOIN wanted w USING (text_hash) WHERE e.encoder = ?",
        params=[name],
    ).to_arrow_table()
    if found.num_rows == 0:
        return {}
    dim = found.column("dim")[0].as_py()
    matrix = from_list_column(found.column("vector"), dim)
    return dict(zip(found.column("text_hash").to_pylist(), matrix, strict=True))


def _insert(store: Store, name: str, hashes: list[str], matrix: np.ndarray) -> None:
    rows = pa.table({  # noqa: F841  (read by DuckDB by name)
        "encoder": pa.array([name] * len(hashes)), "text_hash": pa.array(hashes),
        "dim": pa.array([matrix.shape[1]] * len(hashes), pa.int32()), "vector": to_list_array(matrix),
    })
    store.con.execute("INSERT OR IGNORE INTO embeddings SELECT encoder, text_hash, dim, vector FROM rows")
