"""The create room's one contract: an :class:`LLM` turns chat messages into ``n`` completions.

Backends (local llama.cpp, any OpenAI-compatible server, a deterministic template writer) satisfy the same
protocol, so prompts, compliance and the studio never know which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from adpilot.errors import UserError, check_scalar

Message = dict[str, str]
DEFAULT_REPEAT_PENALTY = 1.1
"""llama.cpp's repeat penalty for the small local models (a model name records any other value: cache key).
1.1 rather than 1.2: with the shipped adapter, 1.2 also penalised every repeated comma and 的 of Chinese copy
(the 84 untrained AdvertiseGen pairs: BLEU-4 +0.98 [+0.32, +1.62], ROUGE-L +2.05; loops are caught and repaired)."""
ROLES = ("system", "user", "assistant")


class LLMError(UserError):
    """The backend could not answer (server down, timed out, model unreadable); the message says which."""


@runtime_checkable
class LLM(Protocol):
    """A chat model. ``name`` identifies the model in the cache key and in ``creatives.model``;
    ``source`` is what ``creatives.source`` records (``llm`` or ``template``); ``steers`` says whether
    ``generate`` honours ``prefer`` (callers skip steered calls otherwise: they would repeat plain ones)."""

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def steers(self) -> bool: ...

    def generate(self, messages: Sequence[Message], n: int = 1, max_tokens: int = 160,
                 temperature: float = 0.7, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
        """``n`` completions of ``messages``; completion ``i`` uses seed ``seed + i``. May contain empty strings.
        ``prefer``: words to steer the sampler towards until the reply holds them; a backend that cannot bias its
        sampler (``steers`` false: an OpenAI-compatible server, the template writer) ignores them."""
        ...


def check_generate_args(messages: Sequence[Message], n: int, max_tokens: int, temperature: float) -> None:
    """Validate the arguments every backend shares; messages must be non-empty role/content dicts.

    >>> check_generate_args([{"role": "user", "content": "hi"}], 1, 10, 0.5)
    >>> check_generate_args([], 1, 10, 0.5)
    Traceback (most recent call last):
    ...
    ValueError: `messages` must hold at least one message
    """
    if not messages:
        raise ValueError("`messages` must hold at least one message")
    for i, message in enumerate(messages):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"`messages[{i}]` must have a role in {ROLES} and a string content, got {message!r}")
    check_scalar(n, "n", ge=1, le=64)
    check_scalar(max_tokens, "max_tokens", ge=1)
    check_scalar(temperature, "temperature", ge=0.0, le=2.0)
