"""DDL of every store table. One place, so that each room reads the same column names.

Columns of ``events``, ``products`` and ``users`` mirror the Arrow schemas in :mod:`adpilot.schema`;
ingestion adds its bookkeeping columns (``source_file``, ``source_row``, ``bot_flag``). An event is identified by
(``event_id``, ``ts``), or by all its fields when it came without an id (``event_id`` NULL): nothing derived is
stored per event, as a content hash cost more to compute and write than validating the event. There is no index:
a per-batch anti-join restricted to the batch's time span stays fast on a large table, where a PRIMARY KEY index
would cost memory and insert time.
``ingest_files`` records each file's progress so an interrupted ingest resumes where its last batch committed.
"""

from __future__ import annotations

import duckdb

from adpilot.schema import Event

TABLES: dict[str, str] = {
    "events": """
        event_id VARCHAR, user_id VARCHAR NOT NULL, session_id VARCHAR,
        ts TIMESTAMPTZ NOT NULL, type VARCHAR NOT NULL, item_id VARCHAR, ad_id VARCHAR, creative_id VARCHAR,
        price DOUBLE, value DOUBLE, query VARCHAR, text VARCHAR, rating DOUBLE,
        device VARCHAR, geo VARCHAR, page VARCHAR, slot VARCHAR,
        bot_flag BOOLEAN DEFAULT FALSE, source_file VARCHAR, source_row BIGINT
    """,
    "products": """
        product_id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, description VARCHAR,
        category VARCHAR[], attributes MAP(VARCHAR, VARCHAR), price DOUBLE NOT NULL, brand VARCHAR,
        language VARCHAR
    """,
    "users": """
        user_id VARCHAR PRIMARY KEY, gender VARCHAR, age_band VARCHAR, geo VARCHAR,
        consent_personalisation BOOLEAN DEFAULT TRUE, consent_ads BOOLEAN DEFAULT TRUE
    """,
    "advertisers": """
        advertiser_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, domain VARCHAR, status VARCHAR,
        api_key_hash VARCHAR
    """,
    "campaigns": """
        campaign_id VARCHAR PRIMARY KEY, advertiser_id VARCHAR NOT NULL, name VARCHAR, status VARCHAR,
        total_budget DOUBLE, daily_budget DOUBLE, start TIMESTAMPTZ, "end" TIMESTAMPTZ, timezone VARCHAR,
        bid_strategy VARCHAR, max_cpc DOUBLE, target_cpa DOUBLE, freq_cap_daily INTEGER,
        freq_cap_lifetime INTEGER, targeting JSON
    """,
    "ads": """
        ad_id VARCHAR PRIMARY KEY, campaign_id VARCHAR NOT NULL, product_id VARCHAR NOT NULL,
        landing_url VARCHAR, status VARCHAR
    """,
    "creatives": """
        creative_id VARCHAR PRIMARY KEY, ad_id VARCHAR NOT NULL, text VARCHAR NOT NULL, language VARCHAR,
        slot VARCHAR, audience VARCHAR, source VARCHAR, model VARCHAR, scores JSON, status VARCHAR,
        created_at TIMESTAMPTZ DEFAULT current_timestamp
    """,
    "quarantine": """
        source_file VARCHAR NOT NULL, source_row BIGINT NOT NULL, raw VARCHAR, reason VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, ingested_at TIMESTAMPTZ DEFAULT current_timestamp
    """,
    "ingest_files": """
        fingerprint VARCHAR PRIMARY KEY, source_file VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        resume_at BIGINT NOT NULL DEFAULT 0, resume_row BIGINT NOT NULL DEFAULT 0,
        rows_read BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,
        quarantined BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0, flagged BIGINT NOT NULL DEFAULT 0,
        min_ts TIMESTAMPTZ, max_ts TIMESTAMPTZ, done BOOLEAN NOT NULL DEFAULT FALSE,
        started_at TIMESTAMPTZ DEFAULT current_timestamp, finished_at TIMESTAMPTZ
    """,
    "embeddings": """
        encoder VARCHAR NOT NULL, text_hash VARCHAR NOT NULL, dim INTEGER NOT NULL, vector FLOAT[] NOT NULL,
        PRIMARY KEY (encoder, text_hash)
    """,
}


RELAXED = (("events", "event_id"),)
"""Columns a store made by an earlier version declares NOT NULL and this one leaves nullable."""

DROPPED = (("events", "event_key"),)
"""Columns of earlier versions that nothing reads or writes any more."""


def create_all_sql() -> list[str]:
    """``CREATE TABLE IF NOT EXISTS`` statements for every table, in dependency order."""
    return [f"CREATE TABLE IF NOT EXISTS {name} ({ddl.strip()})" for name, ddl in TABLES.items()]


def derived_event_id_sql() -> str:
    """The ``event_id`` the earlier layout derived for an event that came without one: the MD5 hex of its content."""
    content = [name for name in Event.model_fields if name not in ("event_id", "ts")]
    parts = ", ".join(["CAST(epoch_us(ts) AS VARCHAR)"] + [f"coalesce(CAST(\"{c}\" AS VARCHAR), '\\N')" for c in content])
    return f"md5(concat_ws(chr(31), {parts}))"


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a store made by an earlier version to the current columns (no-op on a current store).

    The earlier layout stored a derived ``event_id`` for events that came without one; it is set back to NULL,
    so such an event is known by its content like the events stored since (a re-sent copy stays a duplicate). Its
    128-bit ``event_key`` is dropped.
    """
    for table, column in DROPPED:
        if _nullable(con, table, column) is not None:
            con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    for table, column in RELAXED:
        if _nullable(con, table, column) == "NO":
            con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")
            if (table, column) == ("events", "event_id"):
                con.execute(f"UPDATE events SET event_id = NULL WHERE event_id = {derived_event_id_sql()}")


def _nullable(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str | None:
    """``information_schema``'s YES / NO for a column of the main schema, or None when there is no such column."""
    rows = con.execute("SELECT is_nullable FROM information_schema.columns WHERE table_catalog = current_database() "
                       "AND table_schema = 'main' AND table_name = ? AND column_name = ?", [table, column]).fetchall()
    return rows[0][0] if rows else None
