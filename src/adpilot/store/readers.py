"""Streaming readers: a file (CSV, JSONL, Parquet) or an Arrow table becomes a sequence of bounded chunks.

Each chunk carries its rows as an Arrow table with ``_row`` (1-based record number in the source) and the
records the reader itself had to refuse (malformed CSV row, bad encoding, record over the size cap) as
:class:`Reject`. A chunk also says where the next one starts (``end``: byte offset or row index), which is
what makes an interrupted ingest resumable.

Text files are cut into records with numpy (newlines outside double quotes for CSV, every newline for
JSONL), so memory stays bounded by the block size plus ``max_record_bytes`` whatever the file or line size.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from adpilot.errors import InputFileError

NEWLINE, QUOTE = 10, 34
PREFIX_CHARS = 500


@dataclass(frozen=True)
class Reject:
    """A record refused before field validation."""

    row: int
    raw: str
    reason: str


@dataclass
class Chunk:
    """Rows read in one go: ``rows`` counts table rows and rejects; ``end``/``last_row`` say where to resume."""

    table: pa.Table
    rejects: list[Reject]
    rows: int
    end: int
    last_row: int = 0


@dataclass
class Source:
    """Base of the readers: ``columns`` present, those to ``keep`` (None: all), ``notes`` for the user."""

    path: str
    columns: list[str] = field(default_factory=list)
    keep: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    has_raw: bool = False
    json_lines: bool = False

    def chunks(self, start: int = 0, first_row: int = 0) -> Iterator[Chunk]:
        raise NotImplementedError

    def extent(self) -> int:
        """Where the last chunk ends, in the unit of :attr:`Chunk.end` (bytes or rows): for progress bars."""
        return Path(self.path).stat().st_size


def record_ends(buf: np.ndarray, quote_aware: bool, parity: int = 0) -> np.ndarray:
    """Positions of the newlines that end a record in ``buf`` (uint8), given the quote parity at its start.

    >>> record_ends(np.frombuffer(b'a,"x\\ny"\\nb\\n', np.uint8), quote_aware=True).tolist()
    [7, 9]
    """
    newlines = np.flatnonzero(buf == NEWLINE)
    if not quote_aware or len(newlines) == 0:
        return newlines
    # quotes before each newline, found by binary search among the quote positions of windows of the buffer
    # (a running sum over every byte would be slower; windows bound the positions' memory)
    before = np.empty(len(newlines), dtype=np.int64)
    seen, window = parity, 1 << 22
    for start in range(0, int(newlines[-1]) + 1, window):
        quotes = np.flatnonzero(buf[start:start + window] == QUOTE)
        lo, hi = np.searchsorted(newlines, [start, start + window])
        before[lo:hi] = np.searchsorted(quotes, newlines[lo:hi] - start) + seen
        seen += len(quotes)
    odd = before & 1
    return newlines[odd == 0]


def _quote_parity(data: bytes) -> int:
    return data.count(b'"') & 1


def _shown(data: bytes) -> str:
    return data[:PREFIX_CHARS * 4].decode("utf-8", "backslashreplace")[:PREFIX_CHARS]


def sniff_encoding(path: Path, sample: int = 1 << 16) -> str:
    """``utf-8`` or ``gb18030`` (a superset of GBK), judged on the file's first bytes; else a clear error."""
    with open(path, "rb") as handle:
        head = handle.read(sample)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputFileError(f"{path} is UTF-16 encoded; convert it to UTF-8 first")
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    if head.decode("utf-8", "replace").count("\ufffd") <= max(2, len(head) // 1000):
        return "utf-8"  # a few bad bytes: their records are quarantined one by one
    raise InputFileError(f"{path} is neither UTF-8 nor GBK/GB18030 text; convert it to UTF-8 first")


@dataclass
class _Records:
    """Complete records of one block: ``data`` and record ``starts``/``ends`` (exclusive, no newline)."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray
    rows: np.ndarray


def _bounds(data: bytes, quote_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    buf = np.frombuffer(data, np.uint8)
    ends = record_ends(buf, quote_aware)
    if len(data) and (len(ends) == 0 or ends[-1] != len(data) - 1):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else np.zeros(0, np.int64)
    trimmed = ends.copy()
    if len(buf):
        trimmed[(trimmed > starts) & (buf[np.maximum(trimmed - 1, 0)] == 13)] -= 1
    return starts, trimmed


@dataclass
class TextSource(Source):
    """CSV or JSON-lines text, cut into records by :func:`record_ends`, decoded to UTF-8."""

    encoding: str = "utf-8"
    quote_aware: bool = True
    block_bytes: int = 16 << 20
    max_record_bytes: int = 1 << 20
    header_end: int = 0
    delimiter: str = ","

    def _blocks(self, start: int, first_row: int) -> Iterator[tuple[_Records, list[Reject], int, int]]:
        """Yield complete records, records refused for size, and the offset after them."""
        with open(self.path, "rb") as handle:
            handle.seek(max(start, self.header_end))
            offset, row, carry = handle.tell(), first_row, b""
            skipping: tuple[int, bytes, int, int] | None = None  # (row, prefix, size, quote parity)
            while True:
                data = handle.read(self.block_bytes)
                rejects: list[Reject] = []
                if skipping is not None:
                    skip_row, prefix, size, parity = skipping
                    ends = record_ends(np.frombuffer(data, np.uint8), self.quote_aware, parity)
                    if len(ends) == 0 and data:
                        skipping = (skip_row, prefix, size + len(data), parity ^ _quote_parity(data))
                        continue
                    cut = int(ends[0]) + 1 if len(ends) else len(data)
                    ending = "the file ends inside it (truncated?)" if not data else "first characters kept"
                    rejects.append(Reject(skip_row, _shown(prefix),
                                          f"record of {size + cut} bytes exceeds the cap of {self.max_record_bytes} "
                                          f"bytes (`max_record_bytes`); {ending}"))
                    offset, row, data, skipping = offset + size + cut, skip_row, data[cut:], None
                buf = carry + data
                ends = record_ends(np.frombuffer(buf, np.uint8), self.quote_aware)
                complete = int(ends[-1]) + 1 if len(ends) else 0
                if not data and complete < len(buf):  # the last record has no final newline
                    tail, buf = buf[complete:], buf[:complete]
                    if self.quote_aware and _quote_parity(tail):
                        rows_before = len(_bounds(buf, self.quote_aware)[0])
                        rejects.append(Reject(row + rows_before + 1, _shown(tail),
                                              "unterminated quoted field at the end of the file (truncated?)"))
                        offset += len(tail)
                    else:
                        buf, complete = buf + tail, len(buf) + len(tail)
                body, carry = buf[:complete], buf[complete:]
                if len(carry) > self.max_record_bytes:
                    skipping = (row + len(_bounds(body, self.quote_aware)[0]) + 1, carry[:PREFIX_CHARS * 4],
                                len(carry), _quote_parity(carry))
                    carry = b""
                records, row = self._split(body, row, rejects)
                row = max([row] + [r.row for r in rejects])
                offset += complete
                if len(records.rows) or rejects:
                    yield records, rejects, offset, row
                if not data:
                    return

    def _split(self, body: bytes, row: int, rejects: list[Reject]) -> tuple[_Records, int]:
        """Cut ``body`` into numbered records; refuse oversized and badly encoded ones; drop blank lines."""
        starts, ends = _bounds(body, self.quote_aware)
        rows = row + 1 + np.arange(len(starts), dtype=np.int64)
        keep = ends > starts
        oversized = keep & ((ends - starts) > self.max_record_bytes)
        for i in np.flatnonzero(oversized):
            rejects.append(Reject(int(rows[i]), _shown(body[starts[i]:ends[i]]),
                                  f"record of {ends[i] - starts[i]} bytes exceeds the cap of {self.max_record_bytes} "
                                  "bytes (`max_record_bytes`); first characters kept"))
        keep &= ~oversized
        next_row = row + len(starts)
        if keep.all() and self.encoding == "utf-8" and _valid_utf8(body):
            return _Records(body, starts, ends, rows), next_row
        if keep.all():
            try:
                text = body.decode(self.encoding)
            except UnicodeDecodeError:
                text = None
            if text is not None:
                data = text.encode("utf-8")
                new_starts, new_ends = _bounds(data, self.quote_aware)
                if len(new_starts) == len(starts):
                    return _Records(data, new_starts, new_ends, rows), next_row
        good: list[bytes] = []
        good_rows = []
        for i in np.flatnonzero(keep):  # slow path: blocks with blank lines or badly encoded records
            record = body[starts[i]:ends[i]]
            try:
                good.append(record.decode(self.encoding).encode("utf-8"))
                good_rows.append(rows[i])
            except UnicodeDecodeError as error:
                rejects.append(Reject(int(rows[i]), _shown(record),
                                      f"not valid {self.encoding} text at byte {error.start} of the record"))
        data = b"\n".join(good)
        new_starts, new_ends = _bounds(data, self.quote_aware) if good else (np.zeros(0, np.int64),) * 2
        if len(new_starts) != len(good):  # a decoded record changed quoting: keep the original cut
            lengths = np.array([len(g) for g in good], dtype=np.int64)
            new_starts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]]).astype(np.int64)
            new_ends = new_starts + lengths
        return _Records(data, new_starts, new_ends, np.array(good_rows, dtype=np.int64)), next_row


def _valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8, checked by Arrow (vectorised, and without building a Python str)."""
    array = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, len(data)], np.int32)), pa.py_buffer(data))
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _string_array(records: _Records) -> pa.Array:
    """The records as one Arrow string array sharing the block's bytes (no per-record copies)."""
    offsets = np.append(records.starts, records.ends[-1] + 1 if len(records.ends) else 0).astype(np.int32)
    array = pa.StringArray.from_buffers(len(records.starts), pa.py_buffer(offsets), pa.py_buffer(records.data + b"\n"))
    return pc.utf8_rtrim(array, characters="\r\n")


@dataclass
class JsonLinesSource(TextSource):
    """One JSON object per line; fields are extracted in SQL, so each chunk is just ``_row`` and ``_raw``."""

    def chunks(self, start: int = 0, first_row: int = 0) -> Iterator[Chunk]:
        for records, rejects, end, row in self._blocks(start, first_row):
            table = pa.table({"_row": pa.array(records.rows, pa.int64()), "_raw": _string_array(records)})
            yield Chunk(table, rejects, len(records.rows) + len(rejects), end, row)


@dataclass
class CsvSource(TextSource):
    """Delimited text with a header line; every field is read as text and typed later in SQL."""

    def _parse(self, data: bytes, newlines_in_values: bool) -> tuple[pa.Table, list[int | None]]:
        """Parse records; with no newline inside a value, Arrow may cut the block and parse it in threads
        (its row numbers for invalid rows stay exact only then)."""
        invalid: list[int | None] = []

        def on_invalid(row: pa_csv.InvalidRow) -> str:
            invalid.append(row.number)
            return "skip"

        table = pa_csv.read_csv(
            io.BytesIO(data),
            read_options=pa_csv.ReadOptions(column_names=self.columns, use_threads=not newlines_in_values),
            parse_options=pa_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=newlines_in_values,
                                              invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(self.columns, pa.string()),
                                                  strings_can_be_null=False, include_columns=self.keep),
        )
        return table, invalid

    def chunks(self, start: int = 0, first_row: int = 0) -> Iterator[Chunk]:
        for records, rejects, end, row in self._blocks(start, first_row):
            n, refused = len(records.rows), len(rejects)
            table = None
            if n:
                multi_line = len(records.data) and records.data.count(b"\n") + 1 > n
                try:
                    parsed, invalid = self._parse(records.data, bool(multi_line))
                    if parsed.num_rows + len(invalid) == n and None not in invalid:
                        bad = np.array(invalid, dtype=np.int64) - 1
                        good = np.ones(n, dtype=bool)
                        good[bad] = False
                        table = parsed.append_column("_row", pa.array(records.rows[good], pa.int64()))
                        rejects.extend(self._reject(records, int(i)) for i in bad)
                except pa.ArrowInvalid:
                    table = None
                if table is None:
                    table = self._one_by_one(records, rejects)
            yield Chunk(table if table is not None else pa.table({"_row": pa.array([], pa.int64())}),
                        rejects, n + refused, end, row)

    def _reject(self, records: _Records, i: int, detail: str = "") -> Reject:
        raw = records.data[records.starts[i]:records.ends[i]]
        fields = len(next(csv.reader([raw.decode("utf-8", "replace")], delimiter=self.delimiter), []))
        reason = detail or f"expected {len(self.columns)} fields, got {fields}"
        return Reject(int(records.rows[i]), _shown(raw), reason)

    def _one_by_one(self, records: _Records, rejects: list[Reject]) -> pa.Table | None:
        """Slow path for a block the parser refused as a whole: parse each record alone."""
        tables = []
        for i in range(len(records.rows)):
            raw = records.data[records.starts[i]:records.ends[i]]
            try:
                parsed, invalid = self._parse(raw, True)
            except pa.ArrowInvalid as error:
                rejects.append(self._reject(records, i, f"unparseable CSV record: {str(error).splitlines()[0]}"))
                continue
            if invalid or parsed.num_rows != 1:
                rejects.append(self._reject(records, i))
                continue
            tables.append(parsed.append_column("_row", pa.array([records.rows[i]], pa.int64())))
        return pa.concat_tables(tables) if tables else None


@dataclass
class ParquetSource(Source):
    """A Parquet file read row group by row group in batches of ``batch_rows``."""

    batch_rows: int = 262_144

    def extent(self) -> int:
        return int(pq.ParquetFile(self.path).metadata.num_rows)

    def chunks(self, start: int = 0, first_row: int = 0) -> Iterator[Chunk]:
        reader = pq.ParquetFile(self.path)
        sizes = [reader.metadata.row_group(i).num_rows for i in range(reader.num_row_groups)]
        group_starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        first_group = int(np.searchsorted(group_starts, start, side="right") - 1) if sizes else 0
        position = int(group_starts[first_group]) if sizes else 0
        groups = list(range(first_group, len(sizes)))
        try:
            for batch in reader.iter_batches(batch_size=self.batch_rows, row_groups=groups, columns=self.keep):
                skip = max(0, start - position)
                position += batch.num_rows
                if skip >= batch.num_rows:
                    continue
                table = pa.Table.from_batches([batch.slice(skip)])
                rows = np.arange(position - table.num_rows, position, dtype=np.int64) + 1
                yield Chunk(table.append_column("_row", pa.array(rows)), [], table.num_rows, position, position)
                del table, batch  # not held while the next batch is decoded: one batch in memory, not two
        except (OSError, pa.ArrowException) as error:
            raise InputFileError(f"{self.path} is unreadable after row {position}: {error}") from error


@dataclass
class ArrowSource(Source):
    """An in-memory Arrow table, sliced into chunks."""

    table: pa.Table | None = None
    batch_rows: int = 262_144

    def extent(self) -> int:
        return self.table.num_rows if self.table is not None else 0

    def chunks(self, start: int = 0, first_row: int = 0) -> Iterator[Chunk]:
        assert self.table is not None
        for offset in range(start, self.table.num_rows, self.batch_rows):
            part = self.table.slice(offset, self.batch_rows)
            rows = np.arange(offset, offset + part.num_rows, dtype=np.int64) + 1
            end = offset + part.num_rows
            yield Chunk(part.append_column("_row", pa.array(rows)), [], part.num_rows, end, end)


TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


def _csv_header(path: Path, encoding: str, delimiter: str, max_record_bytes: int) -> tuple[list[str], int]:
    with open(path, "rb") as handle:
        head = handle.read(max_record_bytes)
    end = head.find(b"\n")
    line = head if end < 0 else head[:end]
    if end < 0 and len(head) >= max_record_bytes:
        raise InputFileError(f"{path}: the header line is longer than {max_record_bytes} bytes")
    text = line.decode(encoding, "replace").lstrip("\ufeff").rstrip("\r")
    names = [n.strip() for n in next(csv.reader([text], delimiter=delimiter), [])]
    if not names or not any(names):
        raise InputFileError(f"{path} has no header line")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise InputFileError(f"{path}: the header repeats column(s) {', '.join(duplicated)}")
    return names, (len(head) if end < 0 else end + 1)


def _json_keys(source: JsonLinesSource, limit: int = 1000) -> list[str]:
    import json

    keys: dict[str, None] = {}
    with open(source.path, "rb") as handle:
        for n, line in enumerate(handle):
            if n >= limit or len(line) > source.max_record_bytes:
                break
            try:
                value = json.loads(line.decode(source.encoding))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(value, dict):
                keys.update(dict.fromkeys(value))
    return list(keys)


def open_source(path: Path, *, batch_rows: int = 262_144, block_bytes: int = 16 << 20,
                max_record_bytes: int = 1 << 20) -> Source:
    """The reader for ``path``, chosen by its suffix; empty or unreadable files raise a clear error."""
    if not path.is_file():
        raise InputFileError(f"{path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path} is empty")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except (OSError, pa.ArrowException) as error:
            raise InputFileError(f"{path} is not a readable Parquet file (truncated?): {error}") from error
        return ParquetSource(str(path), columns=names, batch_rows=batch_rows)
    if suffix not in TEXT_SUFFIXES and suffix not in JSON_SUFFIXES:
        raise InputFileError(f"{path}: unknown file type '{suffix}' (use .csv, .tsv, .jsonl or .parquet)")
    encoding = sniff_encoding(path)
    notes = [] if encoding == "utf-8" else [f"decoded from {encoding.upper()}"]
    if suffix in JSON_SUFFIXES:
        source = JsonLinesSource(str(path), has_raw=True, json_lines=True, quote_aware=False, encoding=encoding,
                                 block_bytes=block_bytes, max_record_bytes=max_record_bytes, notes=notes)
        source.columns = _json_keys(source)
        return source
    delimiter = TEXT_SUFFIXES[suffix]
    names, header_end = _csv_header(path, encoding, delimiter, max_record_bytes)
    return CsvSource(str(path), columns=names, header_end=header_end, delimiter=delimiter, encoding=encoding,
                     block_bytes=block_bytes, max_record_bytes=max_record_bytes, notes=notes)
