"""Retrieval-augmented few-shot: the k (product → copy) examples most similar to a product.

Similarity = cosine of product texts (a :class:`TextEncoder` when one is given, else character 1–2-gram TF-IDF)
+ ``attribute_weight`` × Jaccard overlap of (key, value) attribute pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adpilot.create.prompts import ProductBrief
from adpilot.errors import InputFileError, check_scalar


@dataclass(frozen=True)
class CopyExample:
    """A product with a copy written for it."""

    product: ProductBrief
    copy: str


def read_examples(path: str | Path) -> list[CopyExample]:
    """JSON lines of AdvertiseGen form ``{"content": "k#v*k#v", "summary": copy}``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"copy corpus {path} does not exist")
    examples = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(CopyExample(ProductBrief.from_advertisegen(row["content"]), str(row["summary"])))
        except (ValueError, KeyError, TypeError) as error:
            raise InputFileError(f"{path} line {line_no} is not a {{content, summary}} JSON object: {error}") \
                from error
    if not examples:
        raise InputFileError(f"copy corpus {path} holds no examples")
    return examples


def _jaccard(a: set[tuple[str, str]], b: set[tuple[str, str]]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class CopyPool:
    """Nearest examples by product similarity. ``fit`` indexes the examples; ``query`` returns indices."""

    def __init__(self, k: int = 3, attribute_weight: float = 1.0, encoder: Any | None = None) -> None:
        self.k = int(check_scalar(k, "k", ge=0))
        self.attribute_weight = check_scalar(attribute_weight, "attribute_weight", ge=0)
        self.encoder = encoder

    def fit(self, examples: Iterable[CopyExample]) -> CopyPool:
        self.examples_ = list(examples)
        texts = [e.product.text for e in self.examples_]
        self._pairs = [set(e.product.attributes) for e in self.examples_]
        if self.encoder is not None:
            self.vectors_ = np.asarray(self.encoder.encode(texts, kind="passage"), dtype=np.float32)
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer_ = TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
            self.vectors_ = self.vectorizer_.fit_transform(texts) if texts else None
        return self

    def _embed(self, product: ProductBrief) -> Any:
        if self.encoder is not None:
            return np.asarray(self.encoder.encode([product.text], kind="query"), dtype=np.float32)
        return self.vectorizer_.transform([product.text])

    def similarities(self, product: ProductBrief) -> np.ndarray:
        """Similarity of ``product`` to every example, shape (n_examples,)."""
        if not self.examples_:
            return np.zeros(0)
        cosine = np.asarray((self.vectors_ @ self._embed(product).T).todense() if self.encoder is None
                            else self.vectors_ @ self._embed(product).T).ravel()
        pairs = set(product.attributes)
        overlap = np.array([_jaccard(pairs, other) for other in self._pairs])
        return cosine + self.attribute_weight * overlap

    def query(self, product: ProductBrief, k: int | None = None, exclude: Sequence[int] = (),
              exclude_copy: str = "") -> list[int]:
        """Indices of the ``k`` most similar examples, best first; ``exclude`` indices and any example whose
        copy equals ``exclude_copy`` never come back (leave-one-out evaluation)."""
        k = self.k if k is None else k
        scores = self.similarities(product)
        banned = set(exclude) | {i for i, e in enumerate(self.examples_) if exclude_copy and e.copy == exclude_copy}
        order = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in banned]
        return order[:k]
