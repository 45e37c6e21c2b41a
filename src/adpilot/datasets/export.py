"""Public sets that map to adpilot records, exported as ``events.parquet`` (+ ``products.parquet``) for ingest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from adpilot.datasets._common import PathLike
from adpilot.errors import UserError

Records = tuple[pa.Table, pa.Table | None]


def _talkingdata(path: PathLike | None) -> Records:
    from adpilot.datasets.talking_data import load_talkingdata, talkingdata_events

    return talkingdata_events(load_talkingdata(path)), None


def _taobao(path: PathLike | None) -> Records:
    from adpilot.datasets.taobao import load_taobao_behavior, taobao_events

    return taobao_events(load_taobao_behavior(path))[0], None


def _chinese_reviews(path: PathLike | None) -> Records:
    from adpilot.datasets.reviews import chinese_review_records, load_chinese_reviews

    return chinese_review_records(load_chinese_reviews(path))


def _womens_reviews(path: PathLike | None) -> Records:
    from adpilot.datasets.reviews import load_womens_reviews, womens_review_records

    return womens_review_records(load_womens_reviews(path))


def _grocery(path: PathLike | None) -> Records:
    from adpilot.datasets.amazon import load_grocery

    data = load_grocery(path)
    return data.events, data.products


def _s3rec(name: str) -> Callable[[PathLike | None], Records]:
    def read(path: PathLike | None) -> Records:
        from adpilot.datasets.amazon import load_s3rec, sequence_records

        return sequence_records(load_s3rec(name, path))

    return read


EXPORTS: dict[str, Callable[[PathLike | None], Records]] = {
    "talkingdata": _talkingdata,
    "taobao": _taobao,
    "chinese_reviews": _chinese_reviews,
    "womens_reviews": _womens_reviews,
    "amazon_grocery": _grocery,
    "amazon_beauty": _s3rec("Beauty"),
    "amazon_sports": _s3rec("Sports_and_Outdoors"),
}
"""Name → reader returning (events, products or None); each takes the source path (default: the shared folder)."""


def export_records(name: str, out: PathLike, path: PathLike | None = None) -> dict[str, int]:
    """Write set ``name``'s records into folder ``out``; returns rows written per file."""
    if name not in EXPORTS:
        raise UserError(f"`name` must be one of {sorted(EXPORTS)}, got {name!r}")
    events, products = EXPORTS[name](path)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = {"events.parquet": events.num_rows}
    pq.write_table(events, folder / "events.parquet", compression="zstd")
    if products is not None:
        pq.write_table(products, folder / "products.parquet", compression="zstd")
        written["products.parquet"] = products.num_rows
    return written
