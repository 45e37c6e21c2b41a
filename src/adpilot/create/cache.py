"""A prompt cache in front of any LLM: the same model, messages, sampling settings and seed are never sent twice.

The cache is a DuckDB table (``llm_cache``) in the store or in a file of its own, so re-running a batch after a
crash or with more products reuses every completion already paid for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from adpilot.create.base import LLM, Message

CACHE_DDL = """CREATE TABLE IF NOT EXISTS llm_cache (
    key VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, texts JSON NOT NULL,
    created_at TIMESTAMPTZ DEFAULT current_timestamp)"""


def cache_key(model: str, messages: Sequence[Message], n: int, max_tokens: int, temperature: float,
              seed: int, prefer: Sequence[str] = ()) -> str:
    """sha256 over everything that determines the completions (``prefer`` only when given, so that the keys of
    plain calls stay those of caches written before it existed)."""
    fields = [model, list(messages), n, max_tokens, round(temperature, 6), seed] + ([list(prefer)] if prefer else [])
    payload = json.dumps(fields, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CachedLLM:
    """Wraps an :class:`LLM`; ``hits`` and ``misses`` count calls answered from / sent past the cache."""

    def __init__(self, llm: LLM, con: Any) -> None:
        self.llm = llm
        self.con = con
        self.con.execute(CACHE_DDL)
        self.hits = 0
        self.misses = 0

    @property
    def name(self) -> str:
        return self.llm.name

    @property
    def source(self) -> str:
        return self.llm.source

    @property
    def steers(self) -> bool:
        return self.llm.steers

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def generate(self, messages: Sequence[Message], n: int = 1, max_tokens: int = 160,
                 temperature: float = 0.7, seed: int = 0, prefer: Sequence[str] = ()) -> list[str]:
        key = cache_key(self.llm.name, messages, n, max_tokens, temperature, seed, prefer)
        row = self.con.execute("SELECT texts FROM llm_cache WHERE key = ?", [key]).fetchone()
        if row is not None:
            self.hits += 1
            return list(json.loads(row[0]))
        texts = self.llm.generate(messages, n=n, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                  prefer=prefer)
        self.misses += 1
        self.con.execute("INSERT OR REPLACE INTO llm_cache (key, model, texts) VALUES (?, ?, ?)",
                         [key, self.llm.name, json.dumps(texts, ensure_ascii=False)])
        return texts
