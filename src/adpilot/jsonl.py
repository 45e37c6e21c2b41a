"""Reading JSON-lines files whose every line must hold one record: the one loop the copy corpora, the AdvertiseGen
reader and the eval outputs share, so a bad line is reported the same way everywhere (file, line, what was
expected) and blank lines are skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from adpilot.errors import InputFileError

T = TypeVar("T")


def read_json_lines(path: Path, parse: Callable[[Any], T], what: str) -> list[T]:
    """``parse`` of each non-blank line's JSON value, in file order. A line that is not JSON, or whose value
    ``parse`` refuses (``KeyError``, ``TypeError``, ``ValueError``), is an :class:`InputFileError` naming ``path``,
    the line and ``what`` the line should have been.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     file = Path(folder) / "rows.jsonl"
    ...     _ = file.write_text('{"a": 1}\\n\\n{"a": 2}\\n', encoding="utf-8")
    ...     read_json_lines(file, lambda row: row["a"], "an {a} object")
    [1, 2]
    """
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(parse(json.loads(line)))
            except (ValueError, KeyError, TypeError) as error:
                raise InputFileError(f"{path} line {line_no} is not {what}: {error}") from error
    return records
