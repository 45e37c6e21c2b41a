"""The embedded DuckDB store: tables, ingestion (validate, clean, quarantine, pseudonymise) and queries.

- :class:`Store` (``db``): one DuckDB file, tables created on open, ``transaction()``.
- ``ingest``: ``ingest_file(store, path, kind=None)`` for CSV/TSV/JSONL/Parquet files and
  ``ingest_table(store, table, kind, source)`` for Arrow tables; both return an ``IngestReport`` whose counts
  reconcile (``rows_read = accepted + quarantined + duplicates``); ``event_dedup`` keeps re-sent events out,
  ``bots`` flags bursts.
- ``privacy``: ``pseudonymise(user_id, secret)`` (the id under which a user is stored; serving maps request ids
  with it) and ``mask_pii(text)``.
- ``queries``: small read helpers (table counts, quarantine summaries).
"""

from adpilot.store.db import Store

__all__ = ["Store"]
