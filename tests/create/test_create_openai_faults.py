"""The OpenAI-compatible backend against a real (tiny, misbehaving) HTTP server on 127.0.0.1: retries, timeouts,
garbage and empty answers end in a clear outcome, never a hang or a traceback from httpx."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adpilot.create.base import LLMError
from adpilot.create.openai_chat import OpenAILLM

MESSAGES = [{"role": "user", "content": "写一句广告"}]


class Handler(BaseHTTPRequestHandler):
    """Behaviour chosen by the requested model name; counts requests per model."""

    counts: dict[str, int] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        Handler.counts[model] = Handler.counts.get(model, 0) + 1
        if model == "flaky" and Handler.counts[model] == 1:
            return self._send(503, b"busy")
        if model == "slow":
            time.sleep(1.0)
        if model == "garbage":
            return self._send(200, b"<html>not json</html>")
        if model == "reject":
            return self._send(400, b'{"error": "bad request"}')
        content = None if model == "empty" else f"seed {body['seed']}"
        reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return self._send(200, json.dumps(reply).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def base_url():  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_n_requests_with_consecutive_seeds(base_url: str) -> None:
    llm = OpenAILLM(base_url, model="ok", max_concurrency=2)
    assert llm.generate(MESSAGES, n=3, seed=5) == ["seed 5", "seed 6", "seed 7"]


def test_transient_error_is_retried(base_url: str) -> None:
    assert OpenAILLM(base_url, model="flaky", backoff=0.01).generate(MESSAGES) == ["seed 0"]
    assert Handler.counts["flaky"] == 2


def test_timeout_garbage_and_refusal_are_llm_errors(base_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(LLMError, match="did not answer after 2 attempts"):
        OpenAILLM(base_url, model="slow", timeout=0.2, retries=1, backoff=0.01).generate(MESSAGES)
    assert time.monotonic() - started < 5
    with pytest.raises(LLMError, match="not a chat completion"):
        OpenAILLM(base_url, model="garbage").generate(MESSAGES)
    with pytest.raises(LLMError, match="HTTP 400"):
        OpenAILLM(base_url, model="reject").generate(MESSAGES)


def test_empty_answer_is_an_empty_string(base_url: str) -> None:
    assert OpenAILLM(base_url, model="empty").generate(MESSAGES, n=2) == ["", ""]


def test_unreachable_server_is_an_llm_error() -> None:
    with pytest.raises(LLMError, match="127.0.0.1:9"):
        OpenAILLM("http://127.0.0.1:9/v1", retries=1, backoff=0.01, timeout=1).generate(MESSAGES)
