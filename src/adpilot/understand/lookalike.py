"""Look-alike audiences: the users whose interest vectors are nearest the seed users' mean direction.

Exact inner-product search (``IndexFlatIP``) up to ``hnsw_above`` users; HNSW above it, where a flat scan of a
million 384-d vectors would cost ~100 ms a query. Vectors are unit length, so inner product is cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from adpilot.errors import UserError, check_scalar
from adpilot.store import Store
from adpilot.understand.base import l2_normalise
from adpilot.understand.interest import load_interest_vectors


class LookalikeIndex:
    """ANN index over users' interest vectors; ``fit`` returns self, learned state ends in ``_``."""

    def __init__(self, hnsw_above: int = 100_000, hnsw_m: int = 32, ef_search: int = 128, threads: int = 1) -> None:
        self.threads = int(check_scalar(threads, "threads", ge=1))
        self.hnsw_above = int(check_scalar(hnsw_above, "hnsw_above", ge=0))
        self.hnsw_m = int(check_scalar(hnsw_m, "hnsw_m", ge=4))
        self.ef_search = int(check_scalar(ef_search, "ef_search", ge=1))

    def fit(self, user_ids: Sequence[str], vectors: np.ndarray) -> LookalikeIndex:
        import faiss

        vectors = l2_normalise(vectors)
        if len(user_ids) != len(vectors):
            raise ValueError(f"`user_ids` has {len(user_ids)} ids for {len(vectors)} vectors")
        dim = vectors.shape[1]
        if len(vectors) > self.hnsw_above:
            index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        self.index_ = index
        self.user_ids_ = np.asarray(user_ids, dtype=object)
        self.position_ = {u: i for i, u in enumerate(user_ids)}
        self.vectors_ = vectors
        return self

    def query(self, seeds: Sequence[str], n: int, threshold: float = 0.0) -> pd.DataFrame:
        """The ``n`` most similar non-seed users with cosine >= ``threshold``: (user_id, similarity)."""
        import faiss

        check_scalar(n, "n", ge=1)
        check_scalar(threshold, "threshold", ge=-1, le=1)
        known = [self.position_[s] for s in seeds if s in self.position_]
        if not known:
            raise UserError("none of the seed users has an interest vector (unknown ids, no history or no consent)")
        probe = l2_normalise(self.vectors_[known].mean(0, keepdims=True))
        faiss.omp_set_num_threads(self.threads)  # one query gains nothing from threads; on a busy host, it loses
        scores, rows = self.index_.search(probe, min(n + len(known), len(self.user_ids_)))
        rows, scores = rows[0], scores[0]
        keep = (rows >= 0) & ~np.isin(rows, known) & (scores >= threshold)
        rows, scores = rows[keep][:n], scores[keep][:n]
        return pd.DataFrame({"user_id": self.user_ids_[rows], "similarity": scores.astype(np.float32)})


def lookalike(store: Store, seeds: Sequence[str], n: int, threshold: float = 0.0) -> pd.DataFrame:
    """Look-alikes of ``seeds`` among every profiled user (builds the index on the fly)."""
    users, vectors = load_interest_vectors(store)
    if not users:
        raise UserError("no user has an interest vector yet: run `adpilot profile build` first")
    return LookalikeIndex().fit(users, vectors).query(seeds, n, threshold)
