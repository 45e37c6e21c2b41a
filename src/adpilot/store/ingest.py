"""Ingestion: validate → clean → pseudonymise → de-duplicate → store, one atomic batch at a time.

Per file the counts reconcile exactly: ``rows_read = accepted + quarantined + duplicates``. Each batch
commits together with the file's progress row in ``ingest_files``; a killed ingest therefore resumes after its
last committed batch, and a file whose content was already ingested in full (SHA-256) is skipped with a note.

Missing values, per field (rules come from :mod:`adpilot.schema`; empty text counts as missing):

====================  ==========================================================================
events                ``user_id``, ``ts``, ``type`` missing → reject. ``event_id`` missing → derived
                      from the cleaned content (so a re-sent event is a duplicate). ``ad_id`` missing
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
from adpilot.store.db import Store
from adpilot.store.kinds import KINDS, Kind, TimeWindow, resolve_kind
from adpilot.store.privacy import PSEUDONYM_MACRO as PSEUDONYM
from adpilot.store.privacy import hide_csv_ids, hide_json_ids, install_pseudonym_macro, mask_sql
from adpilot.store.readers import ArrowSource, Chunk, CsvSource, Reject, Source, open_source
from adpilot.store.validate import as_text, input_kind, quote, validation_sql

IN, VALID, PSEUDONYMS, BOTS = "_adpilot_in", "_adpilot_valid", "_adpilot_pseudonyms", "_adpilot_bots"


@dataclass(frozen=True)
class IngestPolicy:
    """Limits of ingestion; defaults suit shop logs. ``now`` is a parameter so tests can pin it."""

    max_future: timedelta = timedelta(days=1)
    earliest: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    burst_per_second: int = 10
    clicks_per_minute: int = 60
    batch_rows: int = 262_144
    block_bytes: int = 16 << 20
    max_record_bytes: int = 1 << 20
    memory_limit: str = "600MB"
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


def _inputs(source: Source, table: pa.Table, kind: Kind) -> tuple[dict[str, tuple[str, str]], str | None]:
    """How each field is read from the batch, and the pre-parse problem (JSON lines) if any."""
    names = [s.name for s in kind.specs]
    if source.json_lines:
        paths = ", ".join(f"'$.\"{n}\"'" for n in names)
        inputs = {n: (f"(CASE WHEN json_valid(_raw) AND json_type(_raw) = 'OBJECT' THEN "
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


def _quarantine(con: duckdb.DuckDBPyConnection, source: str, kind: Kind, rejects: list[Reject],
                hide: Callable[[str], str]) -> int:
    """Store rejected rows with their reasons; user ids in the raw text are pseudonymised (``hide`` for records
    the reader refused, SQL for the others) and personal data is masked like free text."""
    found = con.execute(
        f"INSERT INTO quarantine (source_file, source_row, raw, reason, kind) "
        f"SELECT ?, _row, {mask_sql('_raw')}, _reason, ? FROM {VALID} WHERE _reason IS NOT NULL", [source, kind.name]
    ).fetchone()
    if rejects:
        table = pa.table({"row": [r.row for r in rejects], "raw": [hide(r.raw) for r in rejects],
                          "reason": [r.reason for r in rejects]})
        con.register("_adpilot_rejects", table)
        con.execute("INSERT INTO quarantine (source_file, source_row, raw, reason, kind) "
                    f"SELECT ?, row, {mask_sql('raw')}, reason, ? FROM _adpilot_rejects", [source, kind.name])
        con.unregister("_adpilot_rejects")
    return (int(found[0]) if found else 0) + len(rejects)


def _cleaned(con: duckdb.DuckDBPyConnection, kind: Kind, validation: str, inputs: dict[str, tuple[str, str]]) -> str:
    """``validation`` with user ids pseudonymised and free text masked (and, for events, ids and keys).

    HMACs are computed once per distinct id and kept for the session in a temporary (never persisted) table,
    so later batches of the same users only pay a hash join. An absent ``event_id`` is the MD5 of the cleaned
    content; ``event_key = md5_number(event_id)`` (128 bits) is what de-duplication joins on.
    """
    replaced = [f"CASE WHEN regexp_matches({quote(c)}, '[0-9@]') THEN {mask_sql(quote(c))} ELSE {quote(c)} END "
                f"AS {quote(c)}" for c in kind.masked]
    join = ""
    for column in kind.pseudonymised:
        expr, kind_of_input = inputs.get(column, ("NULL::VARCHAR", "str"))
        con.execute(f"""INSERT INTO {PSEUDONYMS} SELECT raw_id, {PSEUDONYM}(raw_id) FROM (
            SELECT DISTINCT {as_text(expr, kind_of_input)} AS raw_id FROM {IN})
            ANTI JOIN {PSEUDONYMS} USING (raw_id) WHERE raw_id IS NOT NULL""")
        replaced.append(f"_p.pid AS {quote(column)}")
        join = f" LEFT JOIN {PSEUDONYMS} _p ON v.{quote(column)} = _p.raw_id"
    select = f"SELECT v.* REPLACE ({', '.join(replaced)}) FROM ({validation}) v{join}" if replaced else validation
    if kind.name != "events":
        return select
    content = [s.name for s in kind.specs if s.name not in ("event_id", "ts")]
    parts = ", ".join(["CAST(epoch_us(ts) AS VARCHAR)"] + [f"coalesce(CAST({quote(c)} AS VARCHAR), '\\N')"
                                                           for c in content])
    return f"""SELECT *, md5_number(event_id) AS event_key FROM (
        SELECT * REPLACE (coalesce(event_id, md5(concat_ws(chr(31), {parts}))) AS event_id) FROM ({select}))"""


def _store_events(con: duckdb.DuckDBPyConnection, source: str, span: tuple[object, object]) -> int:
    """Insert new events. An event is known by (``event_id``, ``ts``): exact copies and re-sent events are
    duplicates. Only stored events inside the batch's time span are probed, which zone maps make cheap on
    time-ordered data whatever the table's size."""
    found = con.execute(f"""
        INSERT INTO events BY NAME
        SELECT k.* EXCLUDE (_row, _reason, _raw), k._row AS source_row, ? AS source_file, FALSE AS bot_flag
        FROM (SELECT * FROM {VALID} WHERE _reason IS NULL) k
        LEFT JOIN (SELECT event_key, ts, min(_row) AS first FROM {VALID} WHERE _reason IS NULL
                   GROUP BY ALL HAVING count(*) > 1) dup
            ON dup.event_key = k.event_key AND dup.ts = k.ts
        ANTI JOIN (SELECT event_key, ts FROM events WHERE ts BETWEEN ? AND ?) e
            ON e.event_key = k.event_key AND e.ts = k.ts
        WHERE dup.first IS NULL OR k._row = dup.first""", [source, *span]).fetchone()
    return int(found[0]) if found else 0


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
            ON e.{key} = d.{key} AND e._h = {digest("d.")}""").fetchone()
    return int(found[0]) if found else 0


def _load_chunk(con: duckdb.DuckDBPyConnection, source: Source, chunk: Chunk, kind: Kind, policy: IngestPolicy,
                hide: Callable[[str], str]) -> tuple[int, int, int, tuple[datetime | None, datetime | None]]:
    """Validate and store one chunk; returns (accepted, quarantined, duplicates, time span of valid events)."""
    inputs, pre = _inputs(source, chunk.table, kind)
    sql = validation_sql(kind.specs, inputs, IN, extra=kind.extra(policy.window()), has_raw=source.has_raw, pre_reason=pre,
                         short=_short(chunk.table, kind), hidden=dict.fromkeys(kind.pseudonymised, PSEUDONYM))
    con.register(IN, chunk.table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {VALID} AS {_cleaned(con, kind, sql, inputs)}")
    finally:
        con.unregister(IN)
    quarantined = _quarantine(con, source.path, kind, chunk.rejects, hide)
    times = ", min(ts), max(ts)" if kind.name == "events" else ""
    row = con.execute(f"SELECT count(*){times} FROM {VALID} WHERE _reason IS NULL").fetchone()
    valid = int(row[0]) if row else 0
    if kind.name == "events":
        span = (row[1], row[2]) if row else (None, None)
        accepted = _store_events(con, source.path, span) if valid else 0
        if span[0] is not None and span[1] is not None:
            flag_bots(con, span[0], span[1], policy, users=f"(SELECT user_id, ts FROM {VALID} WHERE _reason IS NULL)")
    else:
        span, accepted = (None, None), _store_entities(con, kind)
    return accepted, quarantined, valid - accepted, span


def flag_bots(con: duckdb.DuckDBPyConnection, lo: datetime, hi: datetime, policy: IngestPolicy,
              users: str = "events") -> None:
    """Flag (never drop) events of users acting faster than people do, in the whole minutes around [lo, hi].

    A user with more than ``burst_per_second`` events in one second gets all of them flagged; more than
    ``clicks_per_minute`` clicks (shop or ad) in one minute flags those clicks. Only (user, minute) pairs
    present in ``users`` (a relation with ``user_id`` and ``ts``; after each batch: the batch) are counted,
    against every stored event of those minutes, so a burst split across batches or files is still seen
    and the work stays proportional to the batch. A (user, minute) with no more events than the lower limit
    can hold neither kind of burst, so one aggregation over those minutes usually settles it and only the busy
    pairs are counted per second and per click.
    """
    start = lo.replace(second=0, microsecond=0)
    end = hi.replace(second=0, microsecond=0) + timedelta(minutes=1)
    clicks = "('click', 'ad_click')"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {BOTS} AS WITH busy AS (
            SELECT user_id, date_trunc('minute', ts) AS m FROM events WHERE ts >= ? AND ts < ?
            GROUP BY ALL HAVING count(*) > {min(int(policy.burst_per_second), int(policy.clicks_per_minute))}
        ), pairs AS (
            SELECT DISTINCT k.user_id, date_trunc('minute', k.ts) AS m FROM {users} k
            SEMI JOIN busy b ON k.user_id = b.user_id AND date_trunc('minute', k.ts) = b.m
        ), seen AS MATERIALIZED (
            SELECT e.user_id, e.ts, e.type FROM events e
            SEMI JOIN pairs k ON e.user_id = k.user_id AND date_trunc('minute', e.ts) = k.m
            WHERE e.ts >= ? AND e.ts < ?)
        SELECT user_id, date_trunc('second', ts) AS t, 'second' AS unit FROM seen
        GROUP BY ALL HAVING count(*) > {int(policy.burst_per_second)}
        UNION ALL
        SELECT user_id, date_trunc('minute', ts) AS t, 'minute' AS unit FROM seen WHERE type IN {clicks}
        GROUP BY ALL HAVING count(*) > {int(policy.clicks_per_minute)}""", [start, end] * 2)
    found = con.execute(f"SELECT count(*) FROM {BOTS}").fetchone()
    if not found or not found[0]:
        return
    for unit, only in (("second", ""), ("minute", f"AND events.type IN {clicks}")):
        con.execute(f"""
            UPDATE events SET bot_flag = TRUE FROM (SELECT user_id, t FROM {BOTS} WHERE unit = '{unit}') b
            WHERE events.user_id = b.user_id AND date_trunc('{unit}', events.ts) = b.t {only}
              AND NOT events.bot_flag AND events.ts >= ? AND events.ts < ?""", [start, end])


class _Session:
    """Connection settings for one ingest: memory cap and the pseudonym macro; restored afterwards."""

    def __init__(self, store: Store, settings: Settings, policy: IngestPolicy) -> None:
        self.con = store.con
        row = self.con.execute("SELECT current_setting('memory_limit')").fetchone()
        self.previous = str(row[0]) if row else None
        self.con.execute(f"SET memory_limit = '{policy.memory_limit}'")
        install_pseudonym_macro(self.con, settings.secret)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {PSEUDONYMS} (raw_id VARCHAR, pid VARCHAR)")

    def close(self) -> None:
        for table in (VALID, PSEUDONYMS, BOTS):
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        self.con.execute(f"DROP MACRO IF EXISTS {PSEUDONYM}")
        if self.previous:
            self.con.execute(f"SET memory_limit = '{self.previous}'")


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
