"""The embedded DuckDB store: tables, ingestion (validate, clean, quarantine, pseudonymise) and queries."""

from adpilot.store.db import Store

__all__ = ["Store"]
