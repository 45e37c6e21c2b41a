"""The one contract every text encoder satisfies, and the text hygiene they all share.

An encoder turns texts into rows of a float32 matrix, L2-normalised, so that a dot product is a cosine. ``kind``
says whether a text is a *query* (a search, an advertiser's interest word, a user's interest vector used as a
probe) or a *passage* (a product, an ad, a review); models trained asymmetrically (e5) embed them differently.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np

Kind = Literal["query", "passage"]
KINDS: tuple[str, ...] = ("query", "passage")


def clean_text(text: str | None, max_chars: int) -> str:
    """NFKC-normalise, drop control characters (NUL breaks C engines), collapse spaces, cut to ``max_chars``.

    Cutting by characters bounds the cost of a 100k-character review at a fixed price; e5 would otherwise run
    hundreds of 512-token windows. The head of a product text (title, attributes) carries its meaning.

    >>> clean_text("  Nike\\x00 篮球鞋\\n\\n 😀  ", 100)
    'Nike 篮球鞋 😀'
    >>> clean_text(None, 10)
    ''
    >>> len(clean_text("a" * 100_000, 512))
    512
    """
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text[: max_chars * 2])
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.split())[:max_chars]


def l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero. Shape (n, d) -> (n, d) float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class TextEncoder(ABC):
    """Texts -> float32 ``[n, dim]``, rows L2-normalised.

    Subclasses implement :meth:`_encode_batch` on already-cleaned, non-empty batches; this class validates
    ``kind``, cleans and cuts texts, splits work into batches of ``batch_size`` and checks the output.
    """

    name: str
    dim: int
    max_chars: int = 2000
    batch_size: int = 64

    def encode(self, texts: Sequence[str], kind: Kind = "query") -> np.ndarray:
        """Embed ``texts``; shape (len(texts), dim), float32, unit rows."""
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
        if isinstance(texts, str):
            raise TypeError("`texts` must be a sequence of strings, got a single str")
        cleaned = [clean_text(t, self.max_chars) for t in texts]
        out = np.empty((len(cleaned), self.dim), dtype=np.float32)
        for start in range(0, len(cleaned), self.batch_size):
            batch = cleaned[start : start + self.batch_size]
            out[start : start + len(batch)] = self._encode_batch(batch, kind)
        return l2_normalise(out)

    @abstractmethod
    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Embed one batch of cleaned texts; shape (len(texts), dim)."""
