"""Candidate retrieval: approximate nearest neighbours over ad vectors, and a cache of query vectors.

Ad and user vectors are unit-norm, so inner product is cosine similarity. Small catalogues use an exact flat
index. Large ones default to IVF (k-means cells, ``nprobe`` nearest cells scanned): for the ~200 neighbours a
decision wants, scanning a few cells costs far fewer distance computations than an HNSW graph walk with
``efSearch >= 200`` (measured in ``benchmarks/bench_deliver_decide.py``); HNSW stays available.

A search scans the cell centroids, then the ``nprobe`` nearest cells: IVF keeps 2 sqrt(n) cells and scans 9 of
them (~1.4% of the ads). With 4 sqrt(n) cells and 16 scanned (~1.3%) the centroid scan was a third of the search;
half as many centroids cost ~20% less CPU per search for the same recall of the exact top 300 (0.5932 vs 0.5881
in the deliver benchmark; 91% of the old index's top 300). A search is bound by memory, not arithmetic: 9 cells
of 100k 384-d ads are ~2 MB of float32 read per probe, plus the cell centroids. So IVF stores the cells' vectors
and the centroids as float16 by default
(``ivf_float16``): half the bytes, ~25% less CPU per search, and the same neighbours — a float16 inner product
is off by ~1e-4, which reorders only near-ties at the cut-off (overlap with the float32 index's top 300: 0.9998
in the deliver benchmark, recall of the exact top 300 unchanged). Only the index stores float16: scoring reads
the snapshot's float32 vectors. A page's or a query's vector is the same on every request, so its neighbours
are kept in a per-index LRU (:meth:`AdIndex.search_cached`, 10,000 entries, ~24 MB): a repeated page or query
costs no search.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Literal

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
                 ef_search: int = 128, nprobe: int = 9, seed: int = 0, ivf_float16: bool = True,
                 cache_size: int = 10_000) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        self.kind = ("flat" if n < _EXACT_BELOW else "ivf") if kind == "auto" else kind
        self._index: Any  # faiss index classes share no typed base
        if self.kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif self.kind == "ivf":
            nlist = max(1, min(int(2 * np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per cell
            if ivf_float16:
                fp16 = faiss.ScalarQuantizer.QT_fp16  # needs no training
                self._index = faiss.IndexIVFScalarQuantizer(
                    faiss.IndexScalarQuantizer(dim, fp16, faiss.METRIC_INNER_PRODUCT), dim, nlist, fp16,
                    faiss.METRIC_INNER_PRODUCT, False)  # False: the vectors themselves, not residuals
            else:
                self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = seed
            clustering = faiss.IndexFlatIP(dim)  # k-means assigns in float32: fast, and the float32 index's cells
            self._index.clustering_index = clustering
            self._index.train(vectors)
            self._index.clustering_index = None  # not needed after training (and owned here, not by faiss)
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
        self.cached = LRUCache(cache_size)  # lives and dies with the index: rows never outlive their snapshot

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Rows of the ``k`` ads most similar to ``query`` (d,), best first."""
        rows = self.search_many(query.reshape(1, -1), k)[0]
        return rows[rows >= 0]

    def search_cached(self, key: Hashable, query: np.ndarray, k: int,
                      also: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``search_many(query[None], k)[0]``, remembered under ``key`` (a query text or a product page: the
        same ``query`` vector every time), and the uncached rows of ``also`` (a user's vector) if given — in one
        index call when ``query`` is not cached. The longest result asked for is kept and shorter ones are its
        prefix: the same cells are scanned whatever ``k``, so the best ``k`` are the first ``k`` of the best
        ``K > k``."""
        k = max(min(k, self.size), 0)
        rows = self.cached.get(key)
        if rows is not None and len(rows) >= k:
            return rows[:k], None if also is None else self.search_many(also.reshape(1, -1), k)[0]
        if also is None:
            rows, other = self.search_many(query.reshape(1, -1), k)[0], None
        else:
            other, rows = self.search_many(np.vstack((also, query)), k)
        self.cached.put(key, rows)
        return rows, other

    def search_many(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows of the ``k`` ads most similar to each of ``queries`` (m, d), best first, in one index call:
        shape (m, min(k, size)), ``-1`` where a query found fewer."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros((len(queries), 0), dtype=np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.kind == "hnsw":
            import faiss

            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))  # type: ignore[attr-defined]
            _, rows = self._index.search(q, k, params=params)
        else:
            _, rows = self._index.search(q, k)
        return rows


class LRUCache:
    """A thread-safe least-recently-used mapping of at most ``maxsize`` entries, counting hits and misses."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._cache: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                self.misses += 1
                return None
            self._cache.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: np.ndarray) -> None:
        """Store ``value`` (made read-only: callers share it) under ``key``, evicting the least recently used."""
        value.setflags(write=False)
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            if len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)


class QueryVectorCache:
    """Least-recently-used cache of encoded query/page texts, so repeated searches skip the encoder."""

    def __init__(self, encoder: Encoder | None, maxsize: int = 10_000) -> None:
        self.encoder = encoder
        self._cache = LRUCache(maxsize)

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def get(self, text: str) -> np.ndarray | None:
        """The unit vector of ``text`` (d,) float32, or ``None`` without an encoder or text."""
        text = text.strip()
        if self.encoder is None or not text:
            return None
        vector = self._cache.get(text)
        if vector is None:
            vector = np.asarray(self.encoder.encode([text], kind="query"), dtype=np.float32)[0]
            self._cache.put(text, vector)
        return vector
