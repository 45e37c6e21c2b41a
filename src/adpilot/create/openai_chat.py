"""Any OpenAI-compatible ``/v1/chat/completions`` server (vLLM, llama.cpp server, OpenAI itself).

Each of the ``n`` completions is its own request (many servers ignore ``n``), sent concurrently up to
``max_concurrency``; transient failures (timeouts, connection errors, 429 and 5xx) are retried with exponential
back-off, anything else fails at once with a sentence naming the server.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from adpilot.create.base import DEFAULT_REPEAT_PENALTY, LLMError, Message, check_generate_args
from adpilot.errors import check_scalar

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAILLM:
    """Chat completions over HTTP with timeouts, retries and a concurrency limit."""

    source = "llm"
    steers = False

    def __init__(self, base_url: str, model: str = "default", api_key: str = "none", timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5, max_concurrency: int = 2,
                 repeat_penalty: float | None = DEFAULT_REPEAT_PENALTY) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = check_scalar(timeout, "timeout", gt=0)
        self.retries = int(check_scalar(retries, "retries", ge=0))
        self.backoff = check_scalar(backoff, "backoff", ge=0)
        self.max_concurrency = int(check_scalar(max_concurrency, "max_concurrency", ge=1))
        self.repeat_penalty = repeat_penalty

    @property
    def name(self) -> str:
        penalty = f"@rp{self.repeat_penalty}" if self.repeat_penalty != DEFAULT_REPEAT_PENALTY else ""
        return f"openai:{self.model}{penalty}@{self.base_url}"

    def generate(self, messages: Sequence[Message], n: int = 1, max_tokens: int = 160,
                 temperature: float = 0.7, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
        """``n`` completions, one request each with seed ``seed + i``; raises LLMError after the last retry.
        ``prefer`` is ignored: the API's ``logit_bias`` takes token ids of the server's tokenizer, unknown here."""
        check_generate_args(messages, n, max_tokens, temperature)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        with httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=headers) as client, \
                ThreadPoolExecutor(max_workers=min(n, self.max_concurrency)) as pool:
            bodies = [self._body(messages, max_tokens, temperature, seed + i) for i in range(n)]
            return list(pool.map(lambda body: self._post(client, body), bodies))

    def _body(self, messages: Sequence[Message], max_tokens: int, temperature: float, seed: int) -> dict:
        body: dict = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens,
                      "temperature": temperature, "seed": seed}
        if self.repeat_penalty is not None:
            body["repeat_penalty"] = self.repeat_penalty  # llama.cpp / vLLM extension; others ignore it
        return body

    def _post(self, client: httpx.Client, body: dict) -> str:
        """One completion with retries; the text, or ``""`` when the server answers with no content."""
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = client.post("/chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code in RETRYABLE_STATUS:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                raise LLMError(f"{self.base_url} refused the request: HTTP {response.status_code} "
                               f"{response.text[:200]}")
            return _content(response)
        raise LLMError(f"{self.base_url} did not answer after {self.retries + 1} attempts ({problem})")


def _content(response: httpx.Response) -> str:
    """The first choice's message text; malformed JSON is the server's fault and is reported as such."""
    try:
        choice = response.json()["choices"][0]
        return (choice.get("message", {}).get("content") or "").strip()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
        raise LLMError(f"the server answered with something that is not a chat completion: "
                       f"{response.text[:200]!r}") from error
