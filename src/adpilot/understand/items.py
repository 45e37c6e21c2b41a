"""Product and ad vectors: one text per product from a fixed per-language template, encoded through the cache.

Template (``zh``)::  {title}。品牌：{brand}。类目：{a} > {b} > {c}。{k1}：{v1}；{k2}：{v2}。{description}
Template (``en``)::  {title}. Brand: {brand}. Category: {a} > {b} > {c}. {k1}: {v1}; {k2}: {v2}. {description}

Title first, description last: encoders cut long texts at the end (see ``max_chars``), and the title and the
structured attributes say most about what a product is. Parts that are missing are left out with their label.
An ad's vector is the vector of the product it promotes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.keywords import product_keywords
from adpilot.understand.vectors import from_list_column, to_list_array

PRODUCT_KEYWORDS_DDL = "CREATE TABLE IF NOT EXISTS product_keywords (product_id VARCHAR, keyword VARCHAR)"
PRODUCT_VECTORS_DDL = """CREATE TABLE IF NOT EXISTS product_vectors (
    product_id VARCHAR NOT NULL, encoder VARCHAR NOT NULL, vector FLOAT[] NOT NULL,
    PRIMARY KEY (product_id, encoder))"""

_LABELS = {
    "zh": {"stop": "。", "brand": "品牌：", "category": "类目：", "kv": "：", "sep": "；"},
    "en": {"stop": ". ", "brand": "Brand: ", "category": "Category: ", "kv": ": ", "sep": "; "},
}


def product_text(product: dict[str, Any]) -> str:
    """The text a product is embedded as (see the module docstring for the template).

    >>> product_text({"title": "气垫篮球鞋", "brand": "李宁", "category": ["运动", "篮球"],
    ...               "attributes": {"颜色": "黑"}, "description": "", "language": "zh"})
    '气垫篮球鞋。品牌：李宁。类目：运动 > 篮球。颜色：黑。'
    >>> product_text({"title": "Trail shoe", "language": "en", "category": [], "attributes": {}})
    'Trail shoe. '
    """
    labels = _LABELS.get(product.get("language") or "zh", _LABELS["zh"])
    parts = [str(product.get("title") or "")]
    if product.get("brand"):
        parts.append(labels["brand"] + str(product["brand"]))
    if product.get("category"):
        parts.append(labels["category"] + " > ".join(product["category"]))
    attributes = product.get("attributes") or {}
    if isinstance(attributes, list):  # DuckDB/Arrow maps arrive as [(key, value), ...]
        attributes = dict(attributes)
    if attributes:
        parts.append(labels["sep"].join(f"{k}{labels['kv']}{v}" for k, v in attributes.items()))
    text = "".join(part + labels["stop"] for part in parts)
    return text + str(product.get("description") or "")


def build_product_vectors(store: Store, encoder: TextEncoder) -> int:
    """Embed every product (cached) and replace this encoder's rows in ``product_vectors``; returns the count.

    Also refreshes ``product_keywords`` (encoder-independent), whose word rarity is taken over the whole catalogue.
    """
    store.con.execute(PRODUCT_VECTORS_DDL)
    products = store.con.sql(
        "SELECT product_id, title, description, category, attributes, brand, language FROM products "
        "ORDER BY product_id").to_arrow_table().to_pylist()
    keywords = product_keywords(products)  # noqa: F841
    store.con.execute(PRODUCT_KEYWORDS_DDL)
    store.con.execute("DELETE FROM product_keywords")
    store.con.execute("INSERT INTO product_keywords SELECT product_id, keyword FROM keywords")
    matrix = encode_cached(store, encoder, [product_text(p) for p in products], kind="passage")
    rows = pa.table({"product_id": pa.array([p["product_id"] for p in products], pa.string()),  # noqa: F841
                     "encoder": pa.array([encoder.name] * len(products), pa.string()),
                     "vector": to_list_array(matrix)})
    store.con.execute("DELETE FROM product_vectors WHERE encoder = ?", [encoder.name])
    store.con.execute("INSERT INTO product_vectors SELECT product_id, encoder, vector FROM rows")
    return len(products)


def load_product_vectors(store: Store, encoder_name: str) -> tuple[list[str], np.ndarray]:
    """(product ids, float32 matrix) of one encoder's product vectors, in product id order."""
    return _load(store, "SELECT product_id AS id, vector FROM product_vectors WHERE encoder = ? ORDER BY id",
                 encoder_name)


def load_ad_vectors(store: Store, encoder_name: str) -> tuple[list[str], np.ndarray]:
    """(ad ids, float32 matrix): each ad carries its product's vector; ads without one are left out."""
    return _load(store, "SELECT a.ad_id AS id, v.vector FROM ads a JOIN product_vectors v USING (product_id) "
                        "WHERE v.encoder = ? ORDER BY id", encoder_name)


def _load(store: Store, sql: str, encoder_name: str) -> tuple[list[str], np.ndarray]:
    store.con.execute(PRODUCT_VECTORS_DDL)
    table = store.con.sql(sql, params=[encoder_name]).to_arrow_table()
    if table.num_rows == 0:
        return [], np.empty((0, 0), dtype=np.float32)
    dim = len(table.column("vector")[0])
    return table.column("id").to_pylist(), from_list_column(table.column("vector"), dim)
