"""ANN retrieval quality against exact search, and the query-vector cache."""

from __future__ import annotations

import numpy as np
import pytest
from deliver_world import E5Encoder, unit

from adpilot.deliver.retrieval import AdIndex, QueryVectorCache


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_recalls_the_exact_neighbours(kind: str) -> None:
    rng = np.random.default_rng(0)
    centres = unit(rng, 50, 64)
    vectors = centres[rng.integers(0, 50, 8000)] + 0.1 * rng.normal(size=(8000, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    exact, approx = AdIndex(vectors, kind="flat"), AdIndex(vectors, kind=kind)
    queries = unit(rng, 20, 64) * 0.3 + centres[:20]
    recall = np.mean([len(set(exact.search(q, 200)) & set(approx.search(q, 200))) / 200 for q in queries])
    assert recall >= 0.9
    assert AdIndex(vectors[:0], kind="flat").search(queries[0], 5).tolist() == []
    with pytest.raises(ValueError, match="`kind`"):
        AdIndex(vectors, kind="lsh")  # type: ignore[arg-type]


def test_float16_ivf_finds_what_the_float32_one_finds() -> None:
    rng = np.random.default_rng(1)
    centres = unit(rng, 40, 64)
    vectors = centres[rng.integers(0, 40, 6000)] + 0.1 * rng.normal(size=(6000, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    half, full = AdIndex(vectors, kind="ivf"), AdIndex(vectors, kind="ivf", ivf_float16=False)
    queries = unit(rng, 20, 64) * 0.3 + centres[:20]
    a, b = half.search_many(queries, 100), full.search_many(queries, 100)
    assert np.mean([len(set(x) & set(y)) / 100 for x, y in zip(a, b, strict=True)]) >= 0.99


def test_cached_search_is_a_prefix_of_the_longest_search_asked_for() -> None:
    rng = np.random.default_rng(2)
    vectors = unit(rng, 3000, 32).astype(np.float32)
    index, query = AdIndex(vectors, kind="flat", cache_size=2), unit(rng, 1, 32)[0].astype(np.float32)
    expected = index.search_many(query[None], 50)[0]
    assert index.search_cached("page", query, 20)[0].tolist() == expected[:20].tolist()  # miss: searched
    assert index.search_cached("page", query, 50)[0].tolist() == expected.tolist()  # longer: searched again
    assert index.search_cached("page", query, 30)[0].tolist() == expected[:30].tolist()  # a prefix: no search
    assert (index.cached.hits, index.cached.misses) == (2, 1)
    assert index.search_cached("page", query, 0)[0].tolist() == []
    user = unit(rng, 1, 32)[0].astype(np.float32)
    near_user = index.search_many(user[None], 30)[0]
    for key in ("page", "new page"):  # the user's rows with a cached query, and with one searched in the same call
        got, also = index.search_cached(key, query, 30, also=user)
        assert got.tolist() == expected[:30].tolist() and also.tolist() == near_user.tolist()
    assert index.search_cached("new page", query, 30)[1] is None
    index.search_cached("a", query, 5)
    index.search_cached("b", query, 5)  # evicts "new page" and "page", the least recently used
    assert index.cached.get("page") is None


def test_query_cache_encodes_each_text_once_and_evicts_the_oldest() -> None:
    cache = QueryVectorCache(E5Encoder(), maxsize=2)
    first = cache.get("篮球鞋")
    assert first.shape == (384,) and abs(float(np.linalg.norm(first)) - 1) < 1e-3
    assert cache.get(" 篮球鞋 ") is first and (cache.hits, cache.misses) == (1, 1)
    cache.get("running shoes")
    cache.get("绿茶")  # evicts 篮球鞋, the least recently used
    cache.get("篮球鞋")
    assert cache.misses == 4
    assert QueryVectorCache(None).get("anything") is None and cache.get("   ") is None
