"""Reference metrics with the AdvertiseGen protocol used by ChatGLM's P-tuning scripts, and cheap text
similarities for de-duplication and selection.

BLEU-4: nltk ``sentence_bleu`` on characters with smoothing ``method3``. ROUGE-1/2/L: ``rouge-chinese`` F-scores
on jieba tokens. All on a 0–100 scale.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np


def bleu4(hypothesis: str, reference: str) -> float:
    """Sentence BLEU-4 on characters, smoothing method3, ×100.

    >>> round(bleu4("简约的白色外套", "简约的白色外套"), 1)
    100.0
    """
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not hypothesis:
        return 0.0
    return 100.0 * float(sentence_bleu([list(reference)], list(hypothesis),
                                       smoothing_function=SmoothingFunction().method3))


@functools.lru_cache(maxsize=8192)
def words(text: str) -> tuple[str, ...]:
    """jieba tokens without whitespace, as ROUGE sees them; also the stutter check's words. Cached: fusion scores
    each sentence against the same few copies. jieba loads its dictionary on first use, not on import."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return tuple(t for t in jieba.cut(text) if t.strip())


def _tokens(text: str) -> str:
    return " ".join(words(text))


def word_precision(hypothesis: str, reference: str) -> float:
    """Share of the hypothesis's jieba words (counts clipped by the reference's) that the reference has, ×100:
    ROUGE-1's precision side.

    >>> word_precision("白色的外套", "外套是白色的")
    100.0
    """
    hyp, ref = Counter(words(hypothesis)), Counter(words(reference))
    total = sum(hyp.values())
    return 100.0 * sum(min(count, ref[word]) for word, count in hyp.items()) / total if total else 0.0


def rouge(hypothesis: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-scores ×100 on jieba tokens; zeros for an empty hypothesis."""
    from rouge_chinese import Rouge

    hyp, ref = _tokens(hypothesis), _tokens(reference)
    if not hyp.strip() or not ref.strip():
        return {"rouge-1": 0.0, "rouge-2": 0.0, "rouge-l": 0.0}
    scores = Rouge().get_scores(hyp, ref)[0]
    return {name: 100.0 * scores[name]["f"] for name in ("rouge-1", "rouge-2", "rouge-l")}


def char_ngrams(text: str, n: int = 2) -> Counter[str]:
    """Counts of character n-grams (whitespace dropped)."""
    text = "".join(text.split())
    return Counter(text[i:i + n] for i in range(max(len(text) - n + 1, 0)))


def ngram_cosine(a: str, b: str, n: int = 2) -> float:
    """Cosine of character n-gram count vectors, in [0, 1].

    >>> ngram_cosine("白色外套", "白色外套")
    1.0
    """
    ca, cb = char_ngrams(a, n), char_ngrams(b, n)
    dot = sum(v * cb[k] for k, v in ca.items())
    norm = (sum(v * v for v in ca.values()) * sum(v * v for v in cb.values())) ** 0.5
    return round(dot / norm, 12) if norm else 0.0


def mean_interval(values: Sequence[float], seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """Mean and 95 % bootstrap interval (percentile) of per-item scores."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_boot, data.size))].mean(axis=1)
    return float(data.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
