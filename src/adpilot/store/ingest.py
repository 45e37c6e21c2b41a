"""Ingestion: validate → clean → pseudonymise → de-duplicate → store, one atomic batch at a time.

Per file the counts reconcile exactly: ``rows_read = accepted + quarantined + duplicates``. Each batch
commits together with the file's progress row in ``ingest_files``; a killed ingest therefore resumes after its
last committed batch, and a file whose content was already ingested in full (SHA-256) is skipped with a note.

Missing values, per field (rules come from :mod:`adpilot.schema`; empty text counts as missing):

====================  ==========================================================================
events                ``user_id``, ``ts``, ``type`` missing → reject. ``event_id`` missing → NULL, the
                      event is then known by its cleaned content (a re-sent event is a duplicate). ``ad_id`` missing
                      on ad_impression/ad_click → reject; ``item_id`` missing on add_to_cart/purchase →
                      reject. Every other field missing → NULL (no invented price, rating or text).
products              ``product_id``, ``title``, ``price`` → reject; ``description`` → ``""``,
                      ``category`` → ``[]``, ``attributes`` → ``{}``, ``language`` → ``zh``.
users                 ``user_id`` → reject; consent flags → true (the record's default); others NULL.
advertisers/ads/...   the record's required fields → reject; ``status`` → active, campaign
                      ``timezone``/``bid_strategy``/``max_cpc``/``targeting`` → the record's defaults.
====================  ==========================================================================

Outliers are rejected with their reason: money < 0 or not finite, rating outside 0..5, unknown event type,
a timestamp more than ``max_future`` ahead or before ``earliest``, text over the schema's length. Timestamps
are ISO 8601 (naive means UTC) or Unix seconds/milliseconds. Bursts of bot-like events are kept and flagged
(``bot_flag``, see :func:`flag_bots`). Quarantined rows keep their raw content with e-mails, phone and
ID-card numbers masked and the user id replaced by its pseudonym (the same as a stored event's), so a person
can still read the row and find a user's rejected rows by their stored id, but the raw id is not kept: in a
CSV record the user id field is replaced, in a JSON line the first ``"user_id": value`` member (also when the
line is not valid JSON), in a Parquet row the field of the JSON object shown. A CSV record the ``csv`` module
cannot split at all is replaced by a note.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from adpilot.config import Settings, SettingsError, get_settings
from adpilot.errors import UserError
from adpilot.store.bots import BOTS, flag_bots
from adpilot.store.db import Store
from adpilot.store.event_dedup import IN, batch_rows, store_events, time_span
from adpilot.store.kinds import KINDS, Kind, TimeWindow, resolve_kind
from adpilot.store.privacy import PSEUDONYM_MACRO as PSEUDONYM
from adpilot.store.privacy import hide_csv_ids, hide_json_ids, install_pseudonym_macro, mask_sql
from adpilot.store.readers import ArrowSource, Chunk, CsvSource, Reject, Source, open_source
from adpilot.store.validate import InputKind, Inputs, as_text, input_kind, literal, quote, validation_sql

VALID, PSEUDONYMS = "_adpilot_valid", "_adpilot_pseudonyms"
PSEUDONYM_CACHE = 500_000


@dataclass(frozen=True)
class IngestPolicy:
    """Limits of ingestion; defaults suit shop logs. ``now`` is a parameter so tests can pin it.

    A batch (``batch_rows`` Parquet/Arrow rows, ``block_bytes`` of text) is one transaction. Large batches are
    cheaper: each commit leaves a partly filled row group per thread, which a later checkpoint rewrites (on 2
    million Parquet events, batches of 2^19 rows took 13% more CPU than 2^20). Memory stays bounded by one
    batch plus ``memory_limit``.
    """

    max_future: timedelta = timedelta(days=1)
    earliest: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    burst_per_second: int = 10
    clicks_per_minute: int = 60
    batch_rows: int = 1 << 20
    block_bytes: int = 64 << 20
    max_record_bytes: int = 1 << 20
    memory_limit: str = "300MB"
    now: datetime | None = None

    def window(self) -> TimeWindow:
        return TimeWindow(self.earliest, (self.now or datetime.now(UTC)) + self.max_future)


@dataclass
class IngestReport:
    """What one file (or table) did to the store."""

    source: str
    kind: str
    rows_read: int = 0
    accepted: int = 0
    quarantined: int = 0
    duplicates: int = 0
    flagged: int = 0
    already_ingested: bool = False
    resumed_at_row: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.accepted + self.quarantined + self.duplicates


Progress = Callable[[int, int], None]
"""Called after each committed batch with (position reached, final position) in bytes or rows."""


def checked_settings(settings: Settings | None = None) -> Settings:
    """``settings`` (default: the process's), refused as a user error when they keep a public secret."""
    settings = settings or get_settings()
    try:
        settings.require_production_secrets()
    except SettingsError as error:
        raise UserError(str(error)) from error
    return settings


def _fingerprint(path: Path, kind: str) -> str:
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
    digest.update(kind.encode())
    return digest.hexdigest()


def _inputs(source: Source, table: pa.Table, kind: Kind) -> tuple[Inputs, str | None]:
    """How each field is read from the batch, and the pre-parse problem (JSON lines) if any."""
    names = [s.name for s in kind.specs]
    if source.json_lines:
        paths = ", ".join(f"'$.\"{n}\"'" for n in names)
        inputs: Inputs = {n: (f"(CASE WHEN json_valid(_raw) AND json_type(_raw) = 'OBJECT' THEN "
                      f"json_extract_string(_raw, [{paths}]) END)[{i + 1}]", "str") for i, n in enumerate(names)}
        pre = ("CASE WHEN NOT json_valid(_raw) THEN 'line is not valid JSON' "
               "WHEN json_type(_raw) <> 'OBJECT' THEN 'line is not a JSON object' END")
        return inputs, pre
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    return {n: (quote(n), input_kind(types[n])) for n in names if n in types}, None


def _short(table: pa.Table, kind: Kind) -> set[str]:
    """Text columns whose longest value in this batch, in bytes, is within the field's character limit."""
    short = set()
    for spec in kind.specs:
        if spec.max_len is not None and spec.name in table.column_names:
            column = table.column(spec.name)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                longest = pc.max(pc.binary_length(column)).as_py()
                if longest is None or longest <= spec.max_len:
                    short.add(spec.name)
    return short


def _id_hider(source: Source, kind: Kind, secret: str) -> Callable[[str], str]:
    """How a record the reader refused gets its user ids replaced by their pseudonyms before quarantine."""
    names = kind.pseudonymised
    if names and source.json_lines:
        return lambda raw: hide_json_ids(raw, names, secret)
    if names and isinstance(source, CsvSource):
        positions = [source.columns.index(n) for n in names if n in source.columns]
        return lambda raw: hide_csv_ids(raw, positions, source.delimiter, secret)
    return lambda raw: raw


def _quarantine(con: duckdb.DuckDBPyConnection, source: str, kind: Kind, validation: str, rejects: list[Reject],
                hide: Callable[[str], str]) -> int:
    """Store the rows ``validation`` rejects and the records the reader refused, with their reasons; returns how
    many. User ids in the raw text are pseudonymised (``hide`` for records the reader refused, SQL for the
    others) and personal data is masked like free text."""
    found = con.execute(
        f"INSERT INTO quarantine (source_file, source_row, raw, reason, kind) "
        f"SELECT ?, _row, {mask_sql('_raw')}, _reason, ? FROM ({validation})",
        [source, kind.name]).fetchall()[0]
    if rejects:
        table = pa.table({"row": [r.row for r in rejects], "raw": [hide(r.raw) for r in rejects],
                          "reason": [r.reason for r in rejects]})
        con.register("_adpilot_rejects", table)
        con.execute("INSERT INTO quarantine (source_file, source_row, raw, reason, kind) "
                    f"SELECT ?, row, {mask_sql('raw')}, reason, ? FROM _adpilot_rejects", [source, kind.name])
        con.unregister("_adpilot_rejects")
    return (int(found[0]) if found else 0) + len(rejects)


def _cleaned(con: duckdb.DuckDBPyConnection, kind: Kind, validation: str, inputs: Inputs) -> str:
    """``validation`` with user ids pseudonymised and free text masked.

    HMACs are computed once per distinct id and kept for the session in a temporary (never persisted) table
    of at most ``PSEUDONYM_CACHE`` ids, so later batches of the same users only pay a hash join while memory
    stays bounded however many users a file has.
    """
    replaced = [f"CASE WHEN regexp_matches({quote(c)}, '[0-9@]') THEN {mask_sql(quote(c))} ELSE {quote(c)} END "
                f"AS {quote(c)}" for c in kind.masked]
    join = ""
    missing: tuple[str, InputKind] = ("NULL::VARCHAR", "str")
    for column in kind.pseudonymised:
        expr, kind_of_input = inputs.get(column, missing)
        cached = con.execute(f"SELECT count(*) FROM {PSEUDONYMS}").fetchall()[0]
        if cached and cached[0] > PSEUDONYM_CACHE:
            con.execute(f"DELETE FROM {PSEUDONYMS}")
        con.execute(f"""INSERT INTO {PSEUDONYMS} SELECT raw_id, {PSEUDONYM}(raw_id) FROM (
            SELECT DISTINCT {as_text(expr, kind_of_input)} AS raw_id FROM {IN})
            ANTI JOIN {PSEUDONYMS} USING (raw_id) WHERE raw_id IS NOT NULL""")
        replaced.append(f"_p.pid AS {quote(column)}")
        join = f" LEFT JOIN {PSEUDONYMS} _p ON v.{quote(column)} = _p.raw_id"
    return f"SELECT v.* REPLACE ({', '.join(replaced)}) FROM ({validation}) v{join}" if replaced else validation


def _store_entities(con: duckdb.DuckDBPyConnection, kind: Kind) -> int:
    """Upsert by key: the last row of a key wins; a row identical to the stored one is a duplicate."""
    names = [s.name for s in kind.specs]
    key = quote(kind.key)

    def digest(alias: str) -> str:
        fields = ", ".join(f"{quote(n)} := {alias}{quote(n)}" for n in names)
        return f"md5(CAST(to_json(struct_pack({fields})) AS VARCHAR))"

    found = con.execute(f"""
        INSERT OR REPLACE INTO {kind.table} BY NAME
        SELECT {', '.join(f'd.{quote(n)}' for n in names)} FROM (
            SELECT * FROM {VALID} WHERE _reason IS NULL
            QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _row DESC) = 1
        ) d ANTI JOIN (SELECT {key}, {digest("")} AS _h FROM {kind.table}) e
            ON e.{key} = d.{key} AND e._h = {digest("d.")}""").fetchall()[0]
    return int(found[0]) if found else 0


def _load_chunk(con: duckdb.DuckDBPyConnection, source: Source, chunk: Chunk, kind: Kind, policy: IngestPolicy,
                hide: Callable[[str], str]) -> tuple[int, int, int, tuple[datetime | None, datetime | None]]:
    """Validate and store one chunk; returns (accepted, quarantined, duplicates, time span of accepted events).

    Events are never materialised in between: rejects go to quarantine straight from the validation query and
    valid rows to ``events`` straight from the cleaning query, so each costs one pass over the Arrow batch.
    """
    inputs, pre = _inputs(source, chunk.table, kind)
    validation = functools.partial(validation_sql, kind.specs, inputs, IN, extra=kind.extra(policy.window()),
                                   has_raw=source.has_raw, pre_reason=pre, short=_short(chunk.table, kind),
                                   hidden=dict.fromkeys(kind.pseudonymised, PSEUDONYM))
    span: tuple[datetime | None, datetime | None] = (None, None)
    first_last = pc.min_max(chunk.table.column("_row")) if chunk.table.num_rows else None
    rows = (first_last["min"].as_py(), first_last["max"].as_py()) if first_last else (0, 0)
    con.register(IN, chunk.table)
    try:
        quarantined = _quarantine(con, source.path, kind, validation(rows="rejected"), chunk.rejects, hide)
        valid = chunk.table.num_rows - (quarantined - len(chunk.rejects))
        if not valid:
            return 0, quarantined, 0, span
        cleaned = _cleaned(con, kind, validation(rows="valid"), inputs)
        if kind.name == "events":
            plausible = time_span(con, kind, inputs, policy.window())
            assert plausible is not None, "a valid event has a timestamp inside the window"
            accepted, span = store_events(con, source.path, cleaned, rows, plausible, "event_id" in inputs)
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {VALID} AS {cleaned}")
            accepted = _store_entities(con, kind)
    finally:
        con.unregister(IN)
    first, last = span
    if first is not None and last is not None:
        flag_bots(con, first, last, policy.burst_per_second, policy.clicks_per_minute,
                  users=f"(SELECT user_id, ts FROM events WHERE {batch_rows(source.path, rows, (first, last))})")
    return accepted, quarantined, valid - accepted, span


class _Session:
    """Connection settings for one ingest, restored afterwards: the memory cap, the pseudonym macro, no
    insertion order, and an allocator that returns memory after each task.

    The order of rows within an insert means nothing to the store, and keeping it makes DuckDB cut each
    thread's share of an Arrow batch into a full and a small row group, which the next checkpoint then rewrites
    (about as costly as the insert itself). With the cap at 300 MB and memory handed back after each batch, a
    10-million-event file peaks near 760 MiB of resident memory (with 600 MB and DuckDB's default allocator
    threshold: 980 MiB), at no measurable cost in speed.
    """

    SETTINGS = ("memory_limit", "preserve_insertion_order", "allocator_flush_threshold")

    def __init__(self, store: Store, settings: Settings, policy: IngestPolicy) -> None:
        self.con = store.con
        self.previous = {name: self.con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
                         for name in self.SETTINGS}
        self.con.execute(f"SET memory_limit = '{policy.memory_limit}'")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET allocator_flush_threshold = '16MB'")  # memory freed by a batch goes back to the OS
        install_pseudonym_macro(self.con, settings.secret)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {PSEUDONYMS} (raw_id VARCHAR, pid VARCHAR)")

    def close(self) -> None:
        for table in (VALID, PSEUDONYMS, BOTS):
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        self.con.execute(f"DROP MACRO IF EXISTS {PSEUDONYM}")
        for name, value in self.previous.items():
            self.con.execute(f"SET {name} = {literal(value)}")


Bookkeeping = Callable[[Chunk, tuple[int, int, int], tuple[datetime | None, datetime | None]], None]


def _run(store: Store, source: Source, kind: Kind, settings: Settings, policy: IngestPolicy, report: IngestReport,
         *, start: int = 0, first_row: int = 0, bookkeeping: Bookkeeping | None = None,
         progress: Progress | None = None) -> tuple[datetime | None, datetime | None]:
    """Load every chunk of ``source``, each in its own transaction with ``bookkeeping``; returns the time span."""
    session, total = _Session(store, settings, policy), source.extent()
    hide = _id_hider(source, kind, settings.secret)
    lo: datetime | None = None
    hi: datetime | None = None
    try:
        for chunk in source.chunks(start, first_row):
            with store.transaction():
                accepted, quarantined, duplicates, span = _load_chunk(store.con, source, chunk, kind, policy, hide)
                if bookkeeping:
                    bookkeeping(chunk, (accepted, quarantined, duplicates), span)
            report.rows_read += chunk.rows
            report.accepted += accepted
            report.quarantined += quarantined
            report.duplicates += duplicates
            if span[0] is not None and span[1] is not None:
                lo, hi = (span[0], span[1]) if lo is None or hi is None else (min(lo, span[0]), max(hi, span[1]))
            if progress:
                progress(chunk.end, total)
            del chunk  # dropped before the next one is read: one batch in memory, not two
            pa.default_memory_pool().release_unused()  # and its memory handed back, not kept by Arrow's allocator
    finally:
        session.close()
    return lo, hi


def _flagged(con: duckdb.DuckDBPyConnection, source: str, lo: datetime | None, hi: datetime | None) -> int:
    """How many events of ``source`` within [lo, hi] carry the bot flag."""
    if lo is None or hi is None:
        return 0
    row = con.execute("SELECT count(*) FROM events WHERE source_file = ? AND bot_flag AND ts BETWEEN ? AND ?",
                      [source, lo, hi]).fetchone()
    return int(row[0]) if row else 0


def ingest_file(store: Store, path: str | Path, kind: str | None = None, settings: Settings | None = None,
                policy: IngestPolicy | None = None, progress: Progress | None = None) -> IngestReport:
    """Ingest one CSV, JSONL or Parquet file; resumable, idempotent, atomic per batch."""
    settings, policy, path = checked_settings(settings), policy or IngestPolicy(), Path(path)
    source = open_source(path, batch_rows=policy.batch_rows, block_bytes=policy.block_bytes,
                         max_record_bytes=policy.max_record_bytes)
    chosen = resolve_kind(kind, source.columns, check_columns=not source.json_lines, source=str(path))
    source.path = str(path.resolve())
    known = {s.name for s in chosen.specs}
    ignored = [c for c in source.columns if c not in known]
    source.keep = [c for c in source.columns if c in known]
    fingerprint = _fingerprint(path, chosen.name)
    report = IngestReport(source=source.path, kind=chosen.name, notes=list(source.notes))
    if ignored:
        report.notes.append(f"ignored unknown column(s): {', '.join(ignored)}")
    con = store.con
    done = con.execute("SELECT done, resume_at, resume_row, rows_read, accepted, quarantined, duplicates, "
                       "finished_at FROM ingest_files WHERE fingerprint = ?", [fingerprint]).fetchone()
    if done is not None and done[0]:
        report.already_ingested = True
        report.notes.append(f"identical content already ingested on {done[7]:%Y-%m-%d %H:%M}Z; nothing added")
        return report
    if done is None:
        con.execute("INSERT INTO ingest_files (fingerprint, source_file, kind) VALUES (?, ?, ?)",
                    [fingerprint, source.path, chosen.name])
        start, first_row = 0, 0
    else:
        _, start, first_row, report.rows_read, report.accepted, report.quarantined, report.duplicates, _ = done
        report.resumed_at_row = report.rows_read
        report.notes.append(f"resumed after {report.rows_read} rows committed by an interrupted run")

    def bookkeeping(chunk: Chunk, counts: tuple[int, int, int], span: tuple[datetime | None, ...]) -> None:
        con.execute("""UPDATE ingest_files SET resume_at = ?, resume_row = ?, rows_read = rows_read + ?,
                accepted = accepted + ?, quarantined = quarantined + ?, duplicates = duplicates + ?,
                min_ts = least(min_ts, ?), max_ts = greatest(max_ts, ?) WHERE fingerprint = ?""",
                    [chunk.end, chunk.last_row, chunk.rows, *counts, *span, fingerprint])

    _run(store, source, chosen, settings, policy, report, start=start, first_row=first_row,
         bookkeeping=bookkeeping, progress=progress)
    with store.transaction():
        span = con.execute("SELECT min_ts, max_ts FROM ingest_files WHERE fingerprint = ?", [fingerprint]).fetchone()
        report.flagged = _flagged(con, source.path, *(span or (None, None)))
        con.execute("UPDATE ingest_files SET done = TRUE, flagged = ?, finished_at = current_timestamp "
                    "WHERE fingerprint = ?", [report.flagged, fingerprint])
    return report


def ingest_table(store: Store, table: pa.Table, kind: str, source: str, settings: Settings | None = None,
                 policy: IngestPolicy | None = None, already_pseudonymous: bool = False) -> IngestReport:
    """Ingest an in-memory Arrow table (synthetic world, serving feedback) through the same checks.

    ``user_id`` values are raw ids and get pseudonymised, unless ``already_pseudonymous`` (ids that came out
    of the store or out of :func:`adpilot.store.privacy.pseudonymise`). Each batch is atomic and events are
    de-duplicated, but there is no file-level resume: a table sent twice adds no events, while its rejected
    rows are quarantined again.
    """
    settings, policy = checked_settings(settings), policy or IngestPolicy()
    chosen = resolve_kind(kind, table.column_names, check_columns=True, source=source)
    if already_pseudonymous:
        chosen = dataclasses.replace(chosen, pseudonymised=())
    columns = [c for c in table.column_names if c in {s.name for s in chosen.specs}]
    arrow = ArrowSource(source, columns=columns, table=table.select(columns), batch_rows=policy.batch_rows)
    report = IngestReport(source=source, kind=chosen.name)
    lo, hi = _run(store, arrow, chosen, settings, policy, report)
    report.flagged = _flagged(store.con, source, lo, hi)
    return report


__all__ = ["KINDS", "IngestPolicy", "IngestReport", "flag_bots", "ingest_file", "ingest_table"]
