"""Encoders: the shared conformance checks over the registry, the cache, and the OpenAI-compatible client
against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from adpilot.config import Settings
from adpilot.errors import UserError
from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.encoders import E5Encoder, USEEncoder
from adpilot.understand.openai_encoder import OpenAIEncoder
from adpilot.understand.registry import ENCODERS, get_encoder

AWKWARD = ["", "耐克篮球鞋 男款", "basketball shoes", "😀🏀🔥", "mixed 中文 and English ✓", "x" * 100_000, "\x00\x07"]


@pytest.fixture(scope="session")
def e5() -> E5Encoder:
    return E5Encoder(threads=1)


@pytest.fixture(scope="session")
def embedding_server(use_encoder: USEEncoder) -> Iterator[str]:
    """A real uvicorn server speaking the OpenAI embeddings protocol, backed by the USE model.

    Its first answer is a 503, so every test that talks to it also exercises the client's retry.
    """
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    calls = {"n": 0}

    @app.post("/v1/embeddings")
    def embeddings(body: dict) -> JSONResponse:
        calls["n"] += 1
        if calls["n"] == 1:
            return JSONResponse({"error": "warming up"}, status_code=503)
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        vectors = use_encoder.encode(texts) * 3.0  # not normalised: the client must normalise
        return JSONResponse({"data": [{"index": i, "embedding": v.tolist()}
                                      for i, v in reversed(list(enumerate(vectors)))]})

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(params=["e5", "use", "openai"])
def encoder(request: pytest.FixtureRequest, e5: E5Encoder, use_encoder: USEEncoder) -> TextEncoder:
    if request.param == "openai":
        url = request.getfixturevalue("embedding_server")
        return OpenAIEncoder(url, backoff=0.01)
    return {"e5": e5, "use": use_encoder}[request.param]


def test_registry_covers_every_encoder_under_test() -> None:
    assert set(ENCODERS) == {"e5", "use", "openai"}
    assert get_encoder("use", Settings(encoder_threads=1)).dim == 512
    with pytest.raises(UserError, match="`encoder` must be one of"):
        get_encoder("bert", Settings())


def test_conformance_shapes_norms_and_awkward_texts(encoder: TextEncoder) -> None:
    matrix = encoder.encode(AWKWARD, kind="passage")
    assert matrix.shape == (len(AWKWARD), encoder.dim)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    assert encoder.encode([], kind="query").shape == (0, encoder.dim)


def test_conformance_is_deterministic_and_batch_independent(encoder: TextEncoder) -> None:
    texts = ["李宁篮球鞋", "green tea", "茶具 teapot"]
    together = encoder.encode(texts, kind="query")
    alone = np.vstack([encoder.encode([t], kind="query") for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_conformance_rejects_bad_kind_and_bare_string(encoder: TextEncoder) -> None:
    with pytest.raises(ValueError, match="`kind` must be one of"):
        encoder.encode(["a"], kind="document")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="single str"):
        encoder.encode("a")  # type: ignore[arg-type]


def test_conformance_meaning_crosses_languages(encoder: TextEncoder) -> None:
    """A Chinese query lands nearer its English translation than an unrelated product."""
    query = encoder.encode(["篮球鞋"], kind="query")[0]
    passages = encoder.encode(["basketball shoes", "green tea leaves"], kind="passage")
    assert passages[0] @ query > passages[1] @ query


def test_e5_query_and_passage_differ(e5: E5Encoder) -> None:
    q, p = e5.encode(["green tea"], kind="query")[0], e5.encode(["green tea"], kind="passage")[0]
    assert 0.7 < q @ p < 0.999


def test_openai_client_reports_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAIEncoder(f"http://127.0.0.1:{port}/v1", dim=4, retries=1, backoff=0.01, timeout=1)
    with pytest.raises(UserError, match="unreachable after 2 tries"):
        client.encode(["a"])
    with pytest.raises(UserError, match="`openai_base_url` must start with"):
        OpenAIEncoder("127.0.0.1:8080")


def test_cache_encodes_each_text_once(tmp_path, use_encoder: USEEncoder) -> None:
    class Counting(USEEncoder):
        calls = 0

        def _encode_batch(self, texts: list[str], kind: str) -> np.ndarray:
            Counting.calls += len(texts)
            return super()._encode_batch(texts, kind)  # type: ignore[arg-type]

    counting = Counting()
    texts = ["李宁篮球鞋", "green tea", "李宁篮球鞋", " green  tea "]
    with Store(tmp_path / "c.duckdb") as store:
        first = encode_cached(store, counting, texts, kind="passage")
        assert Counting.calls == 2  # duplicates and whitespace variants share one entry
        again = encode_cached(store, counting, texts, kind="passage")
        assert Counting.calls == 2
        np.testing.assert_array_equal(first, again)
        encode_cached(store, counting, ["green tea"], kind="query")
        assert Counting.calls == 3  # a query is another entry
        assert store.count("embeddings") == 3
