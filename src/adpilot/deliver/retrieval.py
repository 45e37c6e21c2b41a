"""Candidate retrieval: approximate nearest neighbours over ad vectors, and a cache of query vectors.

Ad and user vectors are unit-norm, so inner product is cosine similarity. Small catalogues use an exact flat
index. Large ones default to IVF (k-means cells, ``nprobe`` nearest cells scanned): for the ~200 neighbours a
decision wants, scanning a few cells costs far fewer distance computations than an HNSW graph walk with
``efSearch >= 200`` (measured in ``benchmarks/bench_deliver_decide.py``); HNSW stays available.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Literal

import numpy as np

from adpilot.deliver.base import Encoder

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
_EXACT_BELOW = 20_000


class AdIndex:
    """Inner-product index over ad vectors (rows = ad rows of the snapshot).

    >>> v = np.eye(3, dtype=np.float32)
    >>> AdIndex(v).search(np.array([0, 1, 0], dtype=np.float32), k=1).tolist()
    [1]
    """

    def __init__(self, vectors: np.ndarray, kind: IndexKind = "auto", hnsw_m: int = 32,
                 ef_search: int = 128, nprobe: int = 16, seed: int = 0) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        self.kind = ("flat" if n < _EXACT_BELOW else "ivf") if kind == "auto" else kind
        if self.kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif self.kind == "ivf":
            nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per cell
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = seed
            self._index.train(vectors)
            self._index.nprobe = nprobe
        elif self.kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efConstruction = 80
            self._index.hnsw.efSearch = ef_search
        else:
            raise ValueError(f"`kind` must be one of auto, flat, ivf, hnsw, got {kind!r}")
        if n:
            self._index.add(vectors)
        self.size = n
        self.ef_search = ef_search

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Rows of the ``k`` ads most similar to ``query`` (d,), best first."""
        rows = self.search_many(query.reshape(1, -1), k)[0]
        return rows[rows >= 0]

    def search_many(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows of the ``k`` ads most similar to each of ``queries`` (m, d), best first, in one index call:
        shape (m, min(k, size)), ``-1`` where a query found fewer."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros((len(queries), 0), dtype=np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.kind == "hnsw":
            import faiss

            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            _, rows = self._index.search(q, k, params=params)
        else:
            _, rows = self._index.search(q, k)
        return rows


class QueryVectorCache:
    """Least-recently-used cache of encoded query/page texts, so repeated searches skip the encoder."""

    def __init__(self, encoder: Encoder | None, maxsize: int = 10_000) -> None:
        self.encoder = encoder
        self.maxsize = maxsize
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, text: str) -> np.ndarray | None:
        """The unit vector of ``text`` (d,) float32, or ``None`` without an encoder or text."""
        text = text.strip()
        if self.encoder is None or not text:
            return None
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return vector
        vector = np.asarray(self.encoder.encode([text], kind="query"), dtype=np.float32)[0]
        vector.setflags(write=False)
        with self._lock:
            self.misses += 1
            self._cache[text] = vector
            if len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return vector
