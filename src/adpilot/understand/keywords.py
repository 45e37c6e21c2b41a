"""Readable words from product titles, searches and reviews: jieba for Chinese, word splitting for the rest.

These feed a user's readable interests ("篮球鞋, 李宁, trail running"), which a marketer reads and the
targeting room matches by meaning. Single Chinese characters and stop words carry no interest and are dropped.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import pyarrow as pa

_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOP_WORDS = frozenset(
    ["的", "了", "和", "是", "在", "也", "有", "就", "都", "而", "及", "与", "或", "这", "那", "一个", "我们", "你们", "他们", "非常", "可以", "没有", "不是", "还是", "什么", "这个", "那个", "很", "太", "但是", "因为", "所以", "如果", "就是", "感觉", "东西", "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "is", "are", "was", "were", "be", "it", "this", "that", "my", "your", "our", "very", "not", "but", "so", "as", "at", "by", "from", "have", "has", "had", "i", "you", "we", "they", "he", "she", "its"]  # noqa: SIM905
)


def tokenize(text: str | None) -> list[str]:
    """Content words of ``text``, lower-cased; Chinese through jieba.

    >>> tokenize("Nike 气垫篮球鞋 for the court!")
    ['nike', '气垫', '篮球鞋', 'court']
    """
    if not text:
        return []
    if _CJK.search(text):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        pieces: Iterable[str] = jieba.lcut(text[:2000])
    else:
        pieces = _WORD.findall(text[:2000])
    words = []
    for piece in pieces:
        word = piece.strip().lower()
        if len(word) < 2 or word in STOP_WORDS or word.isdigit() or not _WORD.fullmatch(word):
            continue
        words.append(word)
    return words


def text_keywords(texts: Sequence[str], per_text: int = 5) -> pa.Table:
    """(text, keyword) pairs: the first ``per_text`` distinct content words of each distinct text."""
    left, right = [], []
    for text in dict.fromkeys(t for t in texts if t):
        for word in list(dict.fromkeys(tokenize(text)))[:per_text]:
            left.append(text)
            right.append(word)
    return pa.table({"text": pa.array(left, pa.string()), "keyword": pa.array(right, pa.string())})


def product_keywords(products: list[dict[str, object]], per_title: int = 3) -> pa.Table:
    """(product_id, keyword): leaf category, brand and the ``per_title`` rarest title words in the catalogue.

    Rarity (document frequency over titles) keeps "篮球鞋" and drops words every title shares ("新款").
    """
    titles = [list(dict.fromkeys(tokenize(str(p.get("title") or "")))) for p in products]
    df = Counter(word for words in titles for word in words)
    n = max(len(products), 1)
    ids, words_out = [], []
    for product, words in zip(products, titles, strict=True):
        chosen = sorted(words, key=lambda w: (-math.log(n / df[w]), w))[:per_title] if n > 1 else words[:per_title]
        category = product.get("category") or []
        extra = [str(category[-1]).lower()] if category else []  # type: ignore[index]
        if product.get("brand"):
            extra.append(str(product["brand"]).lower())
        for word in dict.fromkeys(extra + chosen):
            ids.append(product["product_id"])
            words_out.append(word)
    return pa.table({"product_id": pa.array(ids, pa.string()), "keyword": pa.array(words_out, pa.string())})
