"""Helpers every public-data reader shares: where the data lives, missing files, and building record tables."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from adpilot.errors import InputFileError
from adpilot.schema import EVENT_ARROW_SCHEMA, PRODUCT_ARROW_SCHEMA

PathLike = str | Path

PLACEHOLDER_TS = datetime(2020, 1, 1, tzinfo=UTC)
"""Start of the stand-in clock for sources without timestamps: event ``i`` gets ``PLACEHOLDER_TS + i`` seconds."""


def placeholder_ts(order: np.ndarray) -> pa.Array:
    """Timestamps ``PLACEHOLDER_TS + order`` seconds: keeps a source's row order where it has no time."""
    base = int(PLACEHOLDER_TS.timestamp()) * 1_000_000
    return pa.array(base + np.asarray(order, dtype=np.int64) * 1_000_000).cast(pa.timestamp("us", tz="UTC"))


def open_text(file: Path) -> IO[str]:
    """``file`` opened for reading as UTF-8 text, decompressed on the fly when its name ends in ``.gz``."""
    return gzip.open(file, "rt", encoding="utf-8") if file.suffix == ".gz" else open(file, encoding="utf-8")


def shared_root() -> Path:
    """The shared public-data folder: ``$ADPILOT_SHARED_DATA``, else ``../shared/data``."""
    return Path(os.environ.get("ADPILOT_SHARED_DATA", "../shared/data"))


def source_path(path: PathLike | None, default: str) -> Path:
    """``path`` if given, else ``<shared root>/<default>``; a missing file or folder is an :class:`InputFileError`."""
    resolved = Path(path) if path is not None else shared_root() / default
    if not resolved.exists():
        raise InputFileError(f"{resolved} is missing (set ADPILOT_SHARED_DATA or pass the path)")
    return resolved


def member(folder: Path, name: str) -> Path:
    """``folder/name``, which must exist."""
    return source_path(folder / name, name)


def read_csv(path: Path, *, names: list[str] | None = None, delimiter: str = ",",
             types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """A CSV (``.gz`` decompressed by extension) as an Arrow table; ``names`` when the file has no header."""
    try:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=types or {}),
        )
    except pa.ArrowInvalid as error:
        raise InputFileError(f"{path} cannot be read as CSV: {str(error).splitlines()[0]}") from None


def _record_table(schema: pa.Schema, n: int, columns: dict[str, object]) -> pa.Table:
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"not columns of the schema: {sorted(unknown)}")
    arrays = []
    for field in schema:
        value = columns.get(field.name)
        if value is None:
            arrays.append(pa.nulls(n, field.type))
        else:
            array = value if isinstance(value, pa.Array | pa.ChunkedArray) else pa.array(value)
            arrays.append(array.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def events_table(n: int, **columns: object) -> pa.Table:
    """An ``EVENT_ARROW_SCHEMA`` table of ``n`` rows from the given columns; the others are null."""
    return _record_table(EVENT_ARROW_SCHEMA, n, columns)


def products_table(n: int, **columns: object) -> pa.Table:
    """A ``PRODUCT_ARROW_SCHEMA`` table of ``n`` rows from the given columns; the others are null."""
    return _record_table(PRODUCT_ARROW_SCHEMA, n, columns)
