"""The product catalogue: titles, attributes, category paths, brands, prices, and each item's hidden truth.

Every product has one leaf category and one style topic (the latent coordinates users like or not), a latent
appeal, a popularity weight and a launch day: most items exist from day 0, some launch during the period and a few
only after it, so that cold-start items (no past interactions) exist by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from adpilot.datasets.world.vocab import CATEGORIES, EDITIONS, LEAVES, SEASONS, Word
from adpilot.schema import PRODUCT_ARROW_SCHEMA


@dataclass(frozen=True)
class Catalog:
    """Products as parallel arrays (index = position); ``table`` is the public ``PRODUCT_ARROW_SCHEMA`` table.

    Shapes: every array has length ``n`` = number of products.
    """

    ids: pa.Array
    leaf: np.ndarray
    top: np.ndarray
    style: np.ndarray
    brand: np.ndarray  # global brand index, see :func:`brand_names`
    price: np.ndarray
    appeal: np.ndarray
    popularity: np.ndarray
    launch_day: np.ndarray
    language: np.ndarray  # 0 zh, 1 en
    values: tuple[tuple[str, ...], ...]  # attribute values (both languages) per product, for text matching
    attr_words: tuple[tuple[Word, ...], ...]  # attribute values as (zh, en) in key order, style last
    table: pa.Table

    @property
    def n(self) -> int:
        return len(self.leaf)

    def leaf_median_price(self) -> np.ndarray:
        """Median list price per leaf, shape (n_leaves,): the reference for price sensitivity."""
        return np.array([leaf.price for _, leaf in LEAVES], dtype=np.float64)


def brand_names() -> list[Word]:
    """Every brand of every top category, in a fixed order; brand index = advertiser index."""
    return [b for top in CATEGORIES for b in top.brands]


def _brand_offsets() -> np.ndarray:
    return np.cumsum([0] + [len(top.brands) for top in CATEGORIES])


def make_catalog(n_products: int, n_days: int, rng: np.random.Generator) -> Catalog:
    """Draw ``n_products`` products (at least one per leaf, each leaf's first product live from day 0)."""
    n_leaves = len(LEAVES)
    leaf = np.concatenate([np.arange(n_leaves), rng.integers(0, n_leaves, n_products - n_leaves)])
    top = np.array([LEAVES[i][0] for i in range(n_leaves)])[leaf]
    style = rng.integers(0, 8, n_products)
    offsets = _brand_offsets()
    n_brands = np.diff(offsets)
    brand = offsets[top] + (rng.random(n_products) * n_brands[top]).astype(np.int64)
    median = np.array([lf.price for _, lf in LEAVES])[leaf]
    spread = np.array([lf.spread for _, lf in LEAVES])[leaf]
    price = np.maximum(np.round(median * np.exp(spread * rng.standard_normal(n_products))) - 0.1, 0.9)
    appeal = 0.3 * rng.standard_normal(n_products)
    popularity = np.exp(appeal + 0.8 * rng.standard_normal(n_products))
    u = rng.random(n_products)
    launch_day = np.where(u < 0.80, 0, np.where(u < 0.95, rng.integers(1, max(n_days, 2), n_products), n_days))
    launch_day[:n_leaves] = 0
    language = (rng.random(n_products) < 0.25).astype(np.int8)
    choice = rng.random((n_products, 6))
    ids, titles, descriptions, paths, attributes, values, words = [], [], [], [], [], [], []
    width = len(str(n_products))
    brands = brand_names()
    for i in range(n_products):
        cat = CATEGORIES[top[i]]
        lf = LEAVES[leaf[i]][1]
        lang = int(language[i])
        picked = [vals[int(choice[i, k] * len(vals))] for k, (_, vals) in enumerate(cat.attributes)]
        style_word = cat.style_words[style[i]]
        editions = SEASONS if top[i] < 2 else EDITIONS
        season = editions[int(choice[i, 4] * len(editions))]
        selling = cat.selling[int(choice[i, 5] * len(cat.selling))]
        b = brands[brand[i]]
        keys = [("类型", "type"), *(k for k, _ in cat.attributes), cat.style_key]
        vals = [(lf.zh, lf.en), *picked, style_word]
        attributes.append([(k[lang], v[lang]) for k, v in zip(keys, vals, strict=True)])
        values.append(tuple(w for v in vals[1:] for w in v))
        words.append((*picked, style_word))
        ids.append(f"p{i:0{width}d}")
        if lang == 0:
            titles.append(f"{b[0]}{season[0]}{style_word[0]}{picked[0][0]}{picked[1][0]}{lf.zh} {selling[0]}")
            descriptions.append(
                f"这款{lf.zh}{'，'.join(k[0] + '：' + v[0] for k, v in zip(keys[1:], vals[1:], strict=True))}。"
                f"{style_word[0]}风格，{selling[0]}。"
            )
            paths.append([cat.zh, lf.zh])
        else:
            titles.append(f"{b[1]} {season[1]} {style_word[1].title()} {picked[0][1]} {picked[1][1]} {lf.en} - "
                          f"{selling[1]}")
            descriptions.append(
                f"A {style_word[1]} {lf.en} from {b[1]}: "
                f"{'; '.join(k[1] + ' ' + v[1] for k, v in zip(keys[1:], vals[1:], strict=True))}. {selling[1]}."
            )
            paths.append([cat.en, lf.en])
    table = pa.table(
        {
            "product_id": pa.array(ids),
            "title": pa.array(titles),
            "description": pa.array(descriptions),
            "category": pa.array(paths, type=pa.list_(pa.string())),
            "attributes": pa.array(attributes, type=pa.map_(pa.string(), pa.string())),
            "price": pa.array(price),
            "brand": pa.array([brands[b][int(language[i])] for i, b in enumerate(brand)]),
            "language": pa.array(np.where(language == 0, "zh", "en")),
        },
        schema=PRODUCT_ARROW_SCHEMA,
    )
    return Catalog(table.column("product_id").combine_chunks(), leaf, top, style, brand, price, appeal, popularity,
                   launch_day, language, tuple(values), tuple(words), table)
