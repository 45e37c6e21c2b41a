"""Scores for a creative that need no reference: relevance to the product, attribute coverage, fluency
(perplexity under the local model) and, when a ranking model is given, predicted CTR."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adpilot.create.metrics import ngram_cosine
from adpilot.create.prompts import ProductBrief


def coverage(text: str, product: ProductBrief) -> float:
    """Share of distinct attribute values that appear verbatim in ``text`` (1.0 when there are none).

    >>> coverage("白色牛仔外套", ProductBrief.from_advertisegen("颜色#白色*材质#牛仔布"))
    0.5
    """
    values = product.values
    if not values:
        return 1.0
    return sum(v.lower() in text.lower() for v in values) / len(values)


def missing_values(text: str, product: ProductBrief) -> list[str]:
    """Distinct attribute values, other than the title, that ``text`` does not mention verbatim (case aside):
    what a coverage repair asks the model to work in.

    >>> missing_values("白色外套", ProductBrief.from_advertisegen("类型#外套*颜色#白色*风格#文艺"))
    ['文艺']
    """
    lowered = text.lower()
    return [v for v in product.values if v != product.title and v.lower() not in lowered]


def relevance(text: str, product: ProductBrief) -> float:
    """Character 1-gram cosine between the copy and the product text, in [0, 1]."""
    return ngram_cosine(text, product.text, n=1) if product.text else 0.0


def score_creatives(texts: Sequence[str], product: ProductBrief, perplexity: Callable | None = None,
                    ctr: Callable[[Sequence[str]], Sequence[float]] | None = None) -> list[dict[str, float]]:
    """One dict of scores per text; ``perplexity`` and ``ctr`` are optional hooks taking the list of texts."""
    rows = [{"relevance": round(relevance(t, product), 4), "coverage": round(coverage(t, product), 4)}
            for t in texts]
    for name, hook in (("perplexity", perplexity), ("pctr", ctr)):
        if hook is not None and texts:
            for row, value in zip(rows, hook(list(texts)), strict=True):
                row[name] = round(float(value), 4)
    return rows
