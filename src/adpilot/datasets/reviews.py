"""Product reviews: Chinese ``online_shopping_10_cats`` (sentiment) and English Women's Clothing reviews (ratings).

Both map to adpilot records: ``review`` events (one anonymous reviewer per review) plus the reviewed products.
Neither source has timestamps, so event ``ts`` is :data:`~adpilot.datasets._common.PLACEHOLDER_TS` + row seconds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adpilot.datasets._common import (
    PathLike,
    events_table,
    member,
    placeholder_ts,
    products_table,
    read_csv,
    source_path,
)


def _row_ids(prefix: str, n: int) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(np.arange(n)), pa.string()), "")


def load_chinese_reviews(path: PathLike | None = None) -> pa.Table:
    """Columns ``category`` (10 categories), ``label`` (1 positive / 0 negative), ``review`` (text; BOM stripped).

    ``path`` is the CSV or its folder (default ``<shared>/chinese_ecommerce_reviews``).
    """
    source = source_path(path, "chinese_ecommerce_reviews")
    table = read_csv(member(source, "online_shopping_10_cats.csv") if source.is_dir() else source,
                     types={"cat": pa.string(), "label": pa.int8(), "review": pa.string()})
    review = pc.utf8_trim(pc.fill_null(table["review"], ""), "\ufeff \n")
    return pa.table({"category": table["cat"], "label": table["label"], "review": review})


def chinese_review_records(reviews: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(events, products): one product per category (``zhrev-<category>``), one ``review`` event per row.

    Sentiment becomes ``rating``: 5.0 positive, 1.0 negative. Empty reviews are kept with empty text.
    """
    n = reviews.num_rows
    categories = pc.unique(reviews["category"])
    product_ids = pc.binary_join_element_wise("zhrev-", categories, "")
    products = products_table(
        len(categories), product_id=product_ids, title=categories, description=pa.array([""] * len(categories)),
        category=pa.array([[c] for c in categories.to_pylist()], pa.list_(pa.string())),
        price=pa.array(np.zeros(len(categories))), language=pa.array(["zh"] * len(categories)))
    events = events_table(
        n, event_id=_row_ids("zhrev", n), user_id=_row_ids("zhrev-user", n), ts=placeholder_ts(np.arange(n)),
        type=pa.array(["review"] * n), item_id=pc.binary_join_element_wise("zhrev-", reviews["category"], ""),
        text=reviews["review"], rating=pa.array(np.where(reviews["label"].to_numpy() == 1, 5.0, 1.0)))
    return events, products


_WOMENS = {"Clothing ID": "clothing_id", "Age": "age", "Title": "title", "Review Text": "text",
           "Rating": "rating", "Recommended IND": "recommended", "Positive Feedback Count": "positive_feedback",
           "Division Name": "division", "Department Name": "department", "Class Name": "class_name"}


def load_womens_reviews(path: PathLike | None = None) -> pa.Table:
    """Columns clothing_id, age, title, text, rating (1–5), recommended, positive_feedback, division, department,
    class_name. ``path`` is the Parquet file or its folder (default ``<shared>/womens_ecommerce_reviews``)."""
    source = source_path(path, "womens_ecommerce_reviews")
    file = member(source, "WomensClothingE-CommerceReviews.parquet.brotli") if source.is_dir() else source
    table = pq.read_table(file, columns=list(_WOMENS))
    return table.rename_columns([_WOMENS[c] for c in table.column_names])


def womens_review_records(reviews: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(events, products): product ``wcr-<clothing_id>`` with category [division, department, class]; one
    ``review`` event per row (text = title + review text, reviewer ``wcr-user<row>``, rating)."""
    n = reviews.num_rows
    text = pc.binary_join_element_wise(pc.fill_null(reviews["title"], ""), pc.fill_null(reviews["text"], ""), ". ")
    text = pc.utf8_trim(text, ". ")
    item_ids = pc.binary_join_element_wise("wcr-", pc.cast(reviews["clothing_id"], pa.string()), "")
    events = events_table(n, event_id=_row_ids("wcr", n), user_id=_row_ids("wcr-user", n), ts=placeholder_ts(np.arange(n)),
                          type=pa.array(["review"] * n), item_id=item_ids, text=text, rating=reviews["rating"])
    first = pc.index_in(pc.unique(item_ids), item_ids)
    rows = reviews.take(first)
    path = [[d or "", p or "", c or ""] for d, p, c in zip(rows["division"].to_pylist(), rows["department"].to_pylist(),
                                                           rows["class_name"].to_pylist(), strict=True)]
    names = [c or "clothing" for c in rows["class_name"].to_pylist()]
    products = products_table(
        len(first), product_id=item_ids.take(first), title=pa.array(names), description=pa.array([""] * len(first)),
        category=pa.array(path, pa.list_(pa.string())), price=pa.array(np.zeros(len(first))),
        language=pa.array(["en"] * len(first)))
    return events, products
