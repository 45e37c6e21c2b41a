"""Read-only questions other rooms and the CLI ask of the store."""

from __future__ import annotations

from adpilot.store.db import Store
from adpilot.store.tables import TABLES


def table_counts(store: Store) -> dict[str, int]:
    """Rows in each store table."""
    return {name: store.count(name) for name in TABLES}


def quarantine_summary(store: Store) -> list[tuple[str, str, int]]:
    """(reason class, kind, rows): each problem of each row, with quoted values and numbers blanked out.

    >>> s = Store(":memory:")
    >>> _ = s.con.execute("INSERT INTO quarantine (source_file, source_row, reason, kind) VALUES "
    ...     "('f', 1, '`price` must be >= 0, got -1.0; missing `ts`', 'events'), "
    ...     "('f', 2, '`price` must be >= 0, got -7.5', 'events')")
    >>> quarantine_summary(s)
    [('`price` must be >= N, got N', 'events', 2), ('missing `ts`', 'events', 1)]
    """
    rows = store.con.execute("""
        SELECT regexp_replace(regexp_replace(problem, '''[^'']*''', '''…''', 'g'),
                              '-?[0-9][0-9.eE+:-]*', 'N', 'g') AS reason, kind, count(*) AS n
        FROM (SELECT unnest(string_split(reason, '; ')) AS problem, kind FROM quarantine)
        GROUP BY ALL ORDER BY n DESC, reason""").fetchall()
    return [(str(r), str(k), int(n)) for r, k, n in rows]


def quarantined_rows(store: Store, reason: str | None = None, limit: int = 20) -> list[tuple[str, int, str, str]]:
    """Quarantined rows in file order, optionally only those whose reason contains ``reason``."""
    rows = store.con.execute(
        "SELECT source_file, source_row, reason, raw FROM quarantine "
        "WHERE ? IS NULL OR contains(lower(reason), lower(?)) ORDER BY source_file, source_row LIMIT ?",
        [reason, reason, limit]).fetchall()
    return [(str(f), int(r), str(w), str(raw) if raw is not None else "") for f, r, w, raw in rows]
