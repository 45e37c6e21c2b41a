"""User profiles, built in batch from the store and updated incrementally from new events.

Every time-decayed quantity is stored as an *anchored* sum ``S = sum_i w_i * 2 ** ((t_i - anchor) / half_life)``
with one ``anchor`` per store (``profile_meta``). Anchored sums add: an update never rescales untouched users, it
adds the new events' terms, and reading the value decayed to time ``t`` is ``S * 2 ** ((anchor - t) / half_life)``.
Ratios of two sums (shares, mean prices, the interest direction) need no rescaling at all. A full build resets
the anchor to the newest event. Counts, first/last times and RFM inputs are plain sums and extremes.

Build and update are one path (:func:`_apply`) touching only the users in the batch: two DuckDB passes over the
batch (users, then events keyed by integer user and product indices), three GROUP BYs (per-user scalars,
per-(user, source) weights, per-(user, habit) weights), then numpy/scipy over chunks of users
(:mod:`~adpilot.understand.interest`) and Arrow inserts. Interest vectors are a fixed-size ``FLOAT[dim]``
ARRAY: DuckDB reads it 2.5x faster than a ``FLOAT[]`` list (the build's writes took 6 CPU-s less). An update
appends the touched users' new rows and deletes their old ones by row id (``profiles`` has no PRIMARY KEY
index: deleting from it cost seconds per hundred thousand rows), all in one transaction: a failed update changes
nothing. The deleted rows are vacuumed only once they outnumber the live ones (see :func:`_writing`).

Population-relative columns (``recency_days``, ``decayed_events`` as of ``as_of``; ``price_band`` against the
catalogue's price terciles; ``rfm_*`` quintiles among buyers, ties by user id) are computed once per batch over
the whole population; the touched users' rows are written with them, the others get them by an in-place UPDATE
of those scalar columns only — never a rewrite of their vectors.

Affinities are stored per user as parallel lists (``profile_affinity.key_ids``, ``weights``) over a key
vocabulary ``profile_keys(key_id, kind, key)`` that only grows, cut to the top ``interest.KEEP`` per kind.

Event weights (``EVENT_WEIGHTS``): what a user does costs them more effort the closer it is to buying, so it says
more about interest. Ad impressions and conversions (ad-side bookkeeping) carry no interest. Events with
``bot_flag`` are left out.

Consent: a user whose ``users.consent_personalisation`` is false gets no interest signal at all (NULL interest
vector, no keywords, categories or brands); activity, RFM and device/geo/hour habits are kept (frequency
capping and fraud checks need them).

Approximations of the incremental path, documented: sessions and active days are counted per batch, so a session
or day split across two batches counts twice; affinities are cut to the top ``KEEP`` keys per kind.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import sparse

from adpilot.errors import UserError, check_scalar
from adpilot.schema import EVENT_ARROW_SCHEMA
from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.interest import (
    INTEREST_KINDS,
    Keys,
    array_rows,
    interest_vectors,
    list_matrix,
    ranked_affinities,
)
from adpilot.understand.items import PRODUCT_KEYWORDS_DDL, load_product_vectors
from adpilot.understand.keywords import text_keywords
from adpilot.understand.vectors import fetch_row

LOG = logging.getLogger(__name__)

EVENT_WEIGHTS: dict[str, float] = {"page_view": 1.0, "click": 1.0, "ad_click": 1.0, "search": 2.0,
                                   "add_to_cart": 3.0, "review": 3.0, "purchase": 5.0}
RECENT_ITEMS = 50
PURCHASED_ITEMS = 200
CHUNK_USERS = 130_000  # at least, unless fewer users: each insert stays above one row group (122,880 rows)


PROFILE_TABLES = {
    "profiles": """
        user_id VARCHAR NOT NULL, interest_vector FLOAT[{dim}], interest_norm DOUBLE, segment_id INTEGER,
        keywords VARCHAR[], recent_items VARCHAR[], purchased_items VARCHAR[],
        n_events BIGINT, n_sessions BIGINT, active_days BIGINT, first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ,
        n_purchases BIGINT, monetary DOUBLE, last_purchase_ts TIMESTAMPTZ,
        w_events DOUBLE, w_value DOUBLE, w_price DOUBLE, w_logprice DOUBLE,
        top_categories VARCHAR[], top_brands VARCHAR[], device VARCHAR, geo VARCHAR, peak_hour INTEGER,
        night_share DOUBLE, recency_days DOUBLE, decayed_events DOUBLE, avg_price DOUBLE, price_band VARCHAR,
        rfm_r INTEGER, rfm_f INTEGER, rfm_m INTEGER
    """,
    "profile_affinity": "user_id VARCHAR NOT NULL, key_ids INTEGER[], weights DOUBLE[]",
    "profile_keys": "key_id INTEGER NOT NULL, kind VARCHAR NOT NULL, key VARCHAR NOT NULL",
    "profile_meta": "anchor TIMESTAMPTZ, as_of TIMESTAMPTZ, encoder VARCHAR, half_life_days DOUBLE, utc_offset_hours DOUBLE",
}

# Per-user scalar sums of one batch; "a" is the anchored decay factor and "w" = a * event weight.
_DELTA_SQL = f"""
SELECT uidx, count(*) AS n_events,
  count(DISTINCT coalesce(session, CAST(day AS UBIGINT))) AS n_sessions,
  count(DISTINCT day) AS active_days, min(ts) AS first_ts, max(ts) AS last_ts,
  count(*) FILTER (type = 'purchase') AS n_purchases,
  coalesce(sum(coalesce(value, price)) FILTER (type = 'purchase'), 0) AS monetary,
  max(ts) FILTER (type = 'purchase') AS last_purchase_ts,
  sum(a) AS w_events,
  coalesce(sum(a * coalesce(value, price)) FILTER (type = 'purchase'), 0) AS w_value,
  coalesce(sum(w) FILTER (price > 0 AND item_id IS NOT NULL), 0) AS w_price,
  coalesce(sum(w * ln(price)) FILTER (price > 0 AND item_id IS NOT NULL), 0) AS w_logprice,
  list_reverse(max_by(item_id, ts, {RECENT_ITEMS}) FILTER (item_id IS NOT NULL AND w > 0)) AS recent_items,
  list(DISTINCT item_id) FILTER (type = 'purchase' AND item_id IS NOT NULL) AS purchased_items
FROM _ev GROUP BY uidx
"""

# The batch's sums added to the stored row of each touched user; old vector and affinities ride along.
_MERGE_SQL = f"""
SELECT d.uidx, u.user_id, u.consent, p.rowid AS p_row, p.segment_id,
  list_concat(coalesce(p.recent_items, []), d.recent_items)[-{RECENT_ITEMS}:] AS recent_items,
  list_distinct(list_concat(d.purchased_items, coalesce(p.purchased_items, [])))[1:{PURCHASED_ITEMS}]
    AS purchased_items,
  coalesce(p.n_events, 0) + d.n_events AS n_events, coalesce(p.n_sessions, 0) + d.n_sessions AS n_sessions,
  coalesce(p.active_days, 0) + d.active_days AS active_days, least(p.first_ts, d.first_ts) AS first_ts,
  greatest(p.last_ts, d.last_ts) AS last_ts, coalesce(p.n_purchases, 0) + d.n_purchases AS n_purchases,
  coalesce(p.monetary, 0) + d.monetary AS monetary,
  greatest(p.last_purchase_ts, d.last_purchase_ts) AS last_purchase_ts,
  coalesce(p.w_events, 0) + d.w_events AS w_events, coalesce(p.w_value, 0) + d.w_value AS w_value,
  coalesce(p.w_price, 0) + d.w_price AS w_price, coalesce(p.w_logprice, 0) + d.w_logprice AS w_logprice
FROM _delta d JOIN _users u USING (uidx) LEFT JOIN profiles p USING (user_id)
"""

# The stored vectors and affinities of the touched users, in no order: DuckDB's ORDER BY moving 400k vectors cost
# more than the scan; numpy puts them in place. Two inner joins, each probed by the stored table, so the vectors
# stream through (one LEFT JOIN of both from ``_merged`` took 7-11 CPU-s at 413k users; these two, about 4).
_OLD_VECTORS_SQL = """
SELECT m.uidx, p.interest_vector, p.interest_norm FROM profiles p JOIN _merged m ON m.p_row = p.rowid
WHERE p.interest_vector IS NOT NULL
"""
_OLD_AFFINITY_SQL = """
SELECT m.uidx, a.rowid AS a_row, a.key_ids, a.weights FROM profile_affinity a JOIN _merged m USING (user_id)
"""

# One chunk of merged rows with their population-relative columns, in no order (sorting the lists cost more; so
# did joining them back to numpy's results inside DuckDB: 21 CPU-s against 13 for 400k users).
_CHUNK_SQL = """
SELECT m.*, r.recency_days, r.decayed_events, r.avg_price, r.price_band, r.rfm_r, r.rfm_f, r.rfm_m
FROM _merged m JOIN _ranks r USING (uidx) WHERE m.uidx >= ? AND m.uidx < ?
"""

# Keys the batch may need, new ones appended to the vocabulary with fresh ids.
_KEYS_SQL = """
INSERT INTO profile_keys
SELECT coalesce((SELECT max(key_id) FROM profile_keys), -1) + row_number() OVER (ORDER BY kind, key), kind, key
FROM (SELECT DISTINCT kind, key FROM (
    SELECT 'category' AS kind, category_key AS key FROM _items
    UNION ALL SELECT 'brand', brand FROM _items
    UNION ALL SELECT 'keyword', keyword FROM product_keywords
    UNION ALL SELECT 'keyword', keyword FROM _tkw
    UNION ALL SELECT 'device', device FROM _ev
    UNION ALL SELECT 'geo', geo FROM _ev
    UNION ALL SELECT 'hour', CAST(range AS VARCHAR) FROM range(24)) WHERE key IS NOT NULL) c
WHERE NOT EXISTS (SELECT 1 FROM profile_keys k WHERE k.kind = c.kind AND k.key = c.key)
"""

# Source x key indicator: a product's category, brand and keywords; a text's keywords.
_FEATURES_SQL = """
SELECT i.sidx AS src, k.key_id FROM _items i JOIN profile_keys k ON k.kind = 'category' AND k.key = i.category_key
UNION ALL SELECT i.sidx, k.key_id FROM _items i JOIN profile_keys k ON k.kind = 'brand' AND k.key = i.brand
UNION ALL SELECT i.sidx, k.key_id FROM product_keywords pk JOIN _items i USING (product_id)
  JOIN profile_keys k ON k.kind = 'keyword' AND k.key = pk.keyword
UNION ALL SELECT t.sidx, k.key_id FROM _tx t JOIN _tkw w ON w.text = t.body
  JOIN profile_keys k ON k.kind = 'keyword' AND k.key = w.keyword
"""

_SOURCES_SQL = """
SELECT uidx, sidx AS src, sum(w) AS w FROM _ev WHERE consent AND w > 0 AND sidx IS NOT NULL GROUP BY ALL
UNION ALL
SELECT e.uidx, t.sidx, sum(e.w) FROM _ev e JOIN _tx t
  ON t.body = e.body AND t.kind = CASE WHEN e.type = 'search' THEN 'query' ELSE 'passage' END
WHERE e.consent AND e.w > 0 GROUP BY ALL
"""

_HABITS_SQL = """
WITH h AS (SELECT uidx, device, geo, hour, sum(a) AS weight FROM _ev
           GROUP BY GROUPING SETS ((uidx, device), (uidx, geo), (uidx, hour)))
SELECT h.uidx, k.key_id, h.weight FROM h JOIN profile_keys k ON k.kind = 'device' AND k.key = h.device
UNION ALL SELECT h.uidx, k.key_id, h.weight FROM h JOIN profile_keys k ON k.kind = 'geo' AND k.key = h.geo
UNION ALL SELECT h.uidx, k.key_id, h.weight FROM h
  JOIN profile_keys k ON k.kind = 'hour' AND k.key = CAST(h.hour AS VARCHAR)
"""

# Population-relative columns of every user, from the untouched stored rows and the batch's merged rows. RFM
# ranks are quintiles among buyers (ties by user id, so a rebuild and an update agree); the price band is the
# user's geometric mean price against the catalogue's price terciles; recency and decay are as of ``as_of``.
_RANKS_SQL = """
CREATE OR REPLACE TEMP TABLE _ranks AS
WITH pop AS (
  SELECT NULL::INTEGER AS uidx, p.rowid AS p_row, user_id, last_ts, n_purchases, monetary, last_purchase_ts,
    w_events, w_price, w_logprice
  FROM profiles p WHERE NOT EXISTS (SELECT 1 FROM _merged m WHERE m.p_row = p.rowid)
  UNION ALL
  SELECT uidx, NULL, user_id, last_ts, n_purchases, monetary, last_purchase_ts, w_events, w_price, w_logprice
  FROM _merged),
q AS (SELECT coalesce(quantile_cont(price, 1 / 3), 0) AS lo, coalesce(quantile_cont(price, 2 / 3), 0) AS hi
      FROM products)
SELECT uidx, p_row, date_diff('second', last_ts, m.as_of) / 86400.0 AS recency_days,
  w_events * pow(2, date_diff('second', m.as_of, m.anchor) / (86400.0 * m.half_life_days)) AS decayed_events,
  CASE WHEN w_price > 0 THEN exp(w_logprice / w_price) END AS avg_price,
  CASE WHEN w_price <= 0 THEN NULL WHEN exp(w_logprice / w_price) < q.lo THEN 'low'
       WHEN exp(w_logprice / w_price) < q.hi THEN 'mid' ELSE 'high' END AS price_band,
  CASE WHEN n_purchases > 0 THEN ntile(5) OVER (buyers ORDER BY last_purchase_ts, user_id) ELSE 0 END AS rfm_r,
  CASE WHEN n_purchases > 0 THEN ntile(5) OVER (buyers ORDER BY n_purchases, user_id) ELSE 0 END AS rfm_f,
  CASE WHEN n_purchases > 0 THEN ntile(5) OVER (buyers ORDER BY monetary, user_id) ELSE 0 END AS rfm_m
FROM pop, profile_meta m, q
WINDOW buyers AS (PARTITION BY n_purchases > 0)
"""

# The untouched users' population-relative columns, updated in place (scalar columns: no row rewritten). The
# rows reach the UPDATE in row id order: in the window's order, the same 600k-row update cost 30 CPU-s, not 0.3.
_REFRESH_SQL = """
CREATE OR REPLACE TEMP TABLE _rest AS SELECT * EXCLUDE (uidx) FROM _ranks WHERE p_row IS NOT NULL ORDER BY p_row;
UPDATE profiles SET recency_days = r.recency_days, decayed_events = r.decayed_events, avg_price = r.avg_price,
  price_band = r.price_band, rfm_r = r.rfm_r, rfm_f = r.rfm_f, rfm_m = r.rfm_m
FROM _rest r WHERE r.p_row = profiles.rowid
"""

# Consent withdrawn since a user's last event: their stored interest signals go now, not at their next event.
_WITHDRAW_SQL = f"""
UPDATE profiles SET interest_vector = NULL, interest_norm = NULL, keywords = NULL, top_categories = NULL,
  top_brands = NULL
WHERE user_id IN (SELECT user_id FROM _noconsent)
  AND (interest_vector IS NOT NULL OR keywords IS NOT NULL OR top_categories IS NOT NULL OR top_brands IS NOT NULL);
CREATE OR REPLACE TEMP TABLE _kept AS
SELECT a.user_id, list(k.key_id ORDER BY a.i) AS key_ids, list(a.w ORDER BY a.i) AS weights
FROM (SELECT user_id, unnest(key_ids) AS key_id, unnest(weights) AS w, generate_subscripts(key_ids, 1) AS i
      FROM profile_affinity WHERE user_id IN (SELECT user_id FROM _noconsent)) a
JOIN profile_keys k USING (key_id) WHERE k.kind NOT IN {tuple(sorted(INTEREST_KINDS))} GROUP BY a.user_id;
DELETE FROM profile_affinity WHERE user_id IN (SELECT user_id FROM _noconsent);
INSERT INTO profile_affinity SELECT * FROM _kept;
DROP TABLE _kept
"""

# Rows stored for ``profiles``, deleted ones included until a vacuum.
_STORED_SQL = "SELECT coalesce(sum(count), 0) FROM pragma_storage_info('profiles') WHERE column_path = '[0]'"

_TEMP_TABLES = ("_users", "_items", "_ev", "_delta", "_merged", "_ranks", "_rest", "_tkw", "_tx", "_noconsent")


def ensure_profile_tables(store: Store, dim: int) -> None:
    """Create the profile tables if missing (they belong to this room, not to the shared DDL), with ``dim``-float
    interest vectors: a fixed-size ARRAY, which DuckDB writes and reads several times faster than a list."""
    for name, ddl in PROFILE_TABLES.items():
        store.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({ddl.strip().format(dim=dim)})")
    columns = dict(store.con.sql("SELECT column_name, column_type FROM (DESCRIBE profiles) UNION ALL "
                                 "SELECT column_name, column_type FROM (DESCRIBE profile_affinity)").fetchall())
    if "key_ids" not in columns or columns["interest_vector"] == "FLOAT[]":  # lists: before the ARRAY layout
        raise UserError("these profiles were built by an older adpilot: run `adpilot profile build` again")


def build_profiles(store: Store, encoder: TextEncoder, half_life_days: float = 30.0,
                   utc_offset_hours: float = 8.0) -> int:
    """Rebuild every profile from all events in the store; returns the number of profiles.

    Hours and days (habits, active days) are local at ``utc_offset_hours`` (default China Standard Time):
    a fixed offset, so no time-zone database is consulted per row.

    Product vectors for ``encoder`` must exist (:func:`~adpilot.understand.items.build_product_vectors`).
    """
    check_scalar(half_life_days, "half_life_days", gt=0)
    check_scalar(utc_offset_hours, "utc_offset_hours", ge=-12, le=14)
    con = store.con
    for table in PROFILE_TABLES:  # recreated, not emptied: a store from an older layout gets the current one
        con.execute(f"DROP TABLE IF EXISTS {table}")
    ensure_profile_tables(store, encoder.dim)
    anchor = fetch_row(con, "SELECT max(ts) FROM events")[0]  # type: ignore[index]
    if anchor is None:
        return 0
    con.execute("INSERT INTO profile_meta VALUES (?, ?, ?, ?, ?)", [anchor, anchor, encoder.name, half_life_days,
                                                                 utc_offset_hours])
    return _apply(store, encoder, "SELECT * FROM events", [], atomic=False)


def update_profiles(store: Store, encoder: TextEncoder, events: Any = None, since: datetime | None = None) -> int:
    """Merge new events into the profiles; returns the number of profiles touched.

    ``events`` is an Arrow table or DataFrame with the ``events`` columns (already in the store or not); without
    it, the store's events newer than ``since`` (default: the profiles' ``as_of``) are taken. Late events with
    ``ts <= as_of`` are only seen when passed explicitly.
    """
    ensure_profile_tables(store, encoder.dim)
    meta = fetch_row(store.con, "SELECT as_of, encoder FROM profile_meta")
    if meta is None:
        raise UserError("no profiles to update yet: run `adpilot profile build` first")
    if meta[1] != encoder.name:
        raise UserError(f"profiles were built with encoder {meta[1]!r}, not {encoder.name!r}: rebuild or pass "
                        f"`--encoder {meta[1]}`")
    if events is None:
        return _apply(store, encoder, "SELECT * FROM events WHERE ts > ?", [since or meta[0]])
    batch = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
    for column in EVENT_ARROW_SCHEMA:  # a batch may leave optional columns out
        if column.name not in batch.column_names:
            batch = batch.append_column(column, pa.nulls(batch.num_rows, column.type))
    store.con.register("_batch", batch)
    try:
        return _apply(store, encoder, "SELECT * FROM _batch", [])
    finally:
        store.con.unregister("_batch")


@contextmanager
def _step(name: str) -> Iterator[None]:
    """Log how long one step of a build took (benchmarks show these at INFO level)."""
    start, cpu = time.perf_counter(), time.process_time()
    yield
    LOG.info("profiles: %-10s %6.2f s wall %6.2f s CPU, peak RSS %5.0f MiB", name, time.perf_counter() - start,
             time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _apply(store: Store, encoder: TextEncoder, source_sql: str, params: list[Any], atomic: bool = True) -> int:
    """Fold the events selected by ``source_sql`` into the profiles (the one path of build and update).

    The batch is prepared in temp tables, then every write (as_of, refreshed untouched users, the touched
    users' new rows, the removal of their old rows, withdrawn consent) commits as one transaction when
    ``atomic``. A build is not (its tables were just recreated): holding a million new rows in one transaction
    took 2 GiB more memory.
    """
    con = store.con
    try:
        with _step("events"):
            n_users = _prepare_events(store, source_sql, params)
        if n_users == 0:
            return 0
        new_as_of = fetch_row(con, "SELECT max(ts) FROM _ev")[0]  # type: ignore[index]
        with _step("delta"):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _delta AS {_DELTA_SQL}")
        with _step("merge"):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _merged AS {_MERGE_SQL}")
            con.execute("DROP TABLE _delta")
        with _step("sources"):
            sources, keys, features = _sources(store, encoder)
        with _step("weights"):
            weights = _user_matrix(con, _SOURCES_SQL, n_users, sources.shape[0])
        with _step("habits"):
            habits = _user_matrix(con, _HABITS_SQL, n_users, len(keys.kind))
        con.execute("DROP TABLE _ev")  # frees DuckDB's memory for the writes
        with _writing(store, atomic, n_users):
            con.execute("UPDATE profile_meta SET as_of = greatest(as_of, ?)", [new_as_of])
            with _step("ranks"):
                con.execute(_RANKS_SQL)
            with _step("refresh"):
                con.execute(_REFRESH_SQL)
            with _step("old"):
                old = _Old.read(store, n_users, len(keys.kind), sources.shape[1])
            with _step("write"):
                bounds = np.linspace(0, n_users, max(1, n_users // CHUNK_USERS) + 1).astype(int)
                for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                    _write_chunk(store, int(a), int(b), old, weights, sources, features, habits, keys)
            with _step("delete"):
                old_rows = pa.table({"a_row": old.affinity_rows})  # noqa: F841
                con.execute("DELETE FROM profiles WHERE rowid IN (SELECT p_row FROM _merged WHERE p_row IS NOT NULL)")
                con.execute("DELETE FROM profile_affinity WHERE rowid IN (SELECT a_row FROM old_rows)")
            with _step("withdraw"):
                con.execute(_WITHDRAW_SQL)
        return n_users
    finally:
        for temp in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {temp}")


@dataclass(frozen=True)
class _Old:
    """The touched users' stored state: interest vectors and norms, affinities, their row ids; all by uidx.

    The vectors stay in the Arrow buffers DuckDB filled (no copy of 400k x 512 floats); chunks scale them.
    """

    rows: np.ndarray  # uidx of the users with a stored vector, in the order of ``vectors``
    vectors: np.ndarray  # their unit vectors (read-only view)
    norms: np.ndarray
    affinity: sparse.csr_matrix  # (users with stored affinities + 1 empty row) x keys, in no order
    at: np.ndarray  # row of ``affinity`` of each uidx
    affinity_rows: np.ndarray  # row ids in ``profile_affinity``, to delete once the new rows are in

    @classmethod
    def read(cls, store: Store, n_users: int, n_keys: int, dim: int) -> _Old:
        vectors = store.con.sql(_OLD_VECTORS_SQL).to_arrow_table()
        affinity = store.con.sql(_OLD_AFFINITY_SQL).to_arrow_table()
        at = np.full(n_users, affinity.num_rows, dtype=np.int64)  # users without stored affinities: an empty row
        at[affinity.column("uidx").to_numpy()] = np.arange(affinity.num_rows)
        stored = list_matrix(affinity.column("key_ids"), affinity.column("weights"), n_keys)
        padded = sparse.csr_matrix((stored.data, stored.indices, np.r_[stored.indptr, stored.nnz]),
                                   shape=(stored.shape[0] + 1, n_keys))  # the empty row, without a copy
        return cls(vectors.column("uidx").to_numpy(), array_rows(vectors.column("interest_vector"), dim),
                   vectors.column("interest_norm").to_numpy().astype(np.float32), padded, at,
                   affinity.column("a_row").to_numpy())

    def affinities(self, uidx: np.ndarray) -> sparse.csr_matrix:
        """The stored affinities of users ``uidx`` (rows in that order), empty for users without any."""
        return self.affinity[self.at[uidx]]

    def sums(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(uidx, ``vector * norm``) of the users ``a <= uidx < b`` that have a stored vector."""
        pick = np.flatnonzero((self.rows >= a) & (self.rows < b))
        return self.rows[pick], self.vectors[pick] * self.norms[pick, None]


def _prepare_events(store: Store, source_sql: str, params: list[Any]) -> int:
    """Temp tables ``_users`` (user_id, uidx, consent), ``_items`` and ``_ev`` (the batch keyed by indices)."""
    con = store.con
    source = con.sql(f"SELECT * FROM ({source_sql}) LIMIT 0", params=params or None).columns
    bot = "NOT coalesce(e.bot_flag, FALSE)" if "bot_flag" in source else "TRUE"
    con.execute("CREATE OR REPLACE TEMP TABLE _noconsent AS "
                "SELECT user_id FROM users WHERE NOT coalesce(consent_personalisation, TRUE)")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _users AS
        SELECT user_id, CAST(row_number() OVER () - 1 AS INTEGER) AS uidx,
          user_id NOT IN (SELECT user_id FROM _noconsent) AS consent
        FROM (SELECT DISTINCT user_id FROM ({source_sql}) e WHERE {bot})""", params)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _items AS
        SELECT product_id, CAST(row_number() OVER (ORDER BY product_id) - 1 AS INTEGER) AS sidx, price, brand,
          CASE WHEN len(category) > 0 THEN array_to_string(category[1:2], '/') END AS category_key
        FROM products""")
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in EVENT_WEIGHTS.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ev AS
        WITH m AS (SELECT anchor, half_life_days * 86400.0 AS hl, utc_offset_hours * 3600 AS off FROM profile_meta)
        SELECT u.uidx, u.consent, hash(e.session_id) AS session, e.ts, e.type, e.item_id, i.sidx,
          CASE e.type WHEN 'search' THEN e.query WHEN 'review' THEN e.text END AS body,
          e.device, e.geo, e.value, coalesce(e.price, i.price) AS price,
          CAST(floor((epoch(e.ts) + m.off) / 3600) AS BIGINT) % 24 AS hour,
          CAST(floor((epoch(e.ts) + m.off) / 86400) AS BIGINT) AS day,
          pow(2, date_diff('second', m.anchor, e.ts) / m.hl) AS a,
          a * CASE e.type {weights} ELSE 0 END AS w
        FROM ({source_sql}) e JOIN _users u USING (user_id) CROSS JOIN m
        LEFT JOIN _items i ON i.product_id = e.item_id
        WHERE {bot}""", params)
    return int(fetch_row(con, "SELECT count(*) FROM _users")[0])  # type: ignore[index]


def _sources(store: Store, encoder: TextEncoder) -> tuple[np.ndarray, Keys, sparse.csr_matrix]:
    """Source vectors (products by ``sidx``, then the batch's texts), the key vocabulary and source features.

    Also leaves ``_tx`` (kind, body, sidx) and ``_tkw`` (text, keyword) for the SQL that follows.
    """
    con = store.con
    con.execute(PRODUCT_KEYWORDS_DDL)
    n_items = int(fetch_row(con, "SELECT count(*) FROM _items")[0])  # type: ignore[index]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _tx AS
        SELECT kind, body, CAST({n_items} + row_number() OVER (ORDER BY kind, body) - 1 AS INTEGER) AS sidx
        FROM (SELECT DISTINCT CASE WHEN type = 'search' THEN 'query' ELSE 'passage' END AS kind, body FROM _ev
              WHERE consent AND body <> '')""")
    texts = con.sql("SELECT kind, body FROM _tx ORDER BY sidx").to_arrow_table()
    kinds, bodies = texts.column("kind").to_pylist(), texts.column("body").to_pylist()
    tkw = text_keywords(bodies)  # noqa: F841
    con.execute("CREATE OR REPLACE TEMP TABLE _tkw AS SELECT * FROM tkw")
    con.execute(_KEYS_SQL)
    keys = Keys.from_table(con.sql("SELECT key_id, kind, key FROM profile_keys").to_arrow_table())

    ids, vectors = load_product_vectors(store, encoder.name)
    sources = np.zeros((n_items + len(bodies), encoder.dim), dtype=np.float32)
    found = pa.table({"product_id": pa.array(ids, pa.string()), "row": pa.array(np.arange(len(ids)))})  # noqa: F841
    placed = con.sql("SELECT i.sidx, f.row FROM found f JOIN _items i USING (product_id)").fetchnumpy()
    sources[placed["sidx"]] = vectors[placed["row"]]
    for kind in ("passage", "query"):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if rows:
            sources[n_items + np.array(rows)] = encode_cached(store, encoder, [bodies[i] for i in rows],
                                                              kind=kind)  # type: ignore[arg-type]
    pairs = con.sql(_FEATURES_SQL).fetchnumpy()
    features = sparse.csr_matrix((np.ones(len(pairs["src"])), (pairs["src"], pairs["key_id"])),
                                 shape=(sources.shape[0], len(keys.kind)))
    return sources, keys, features


def _user_matrix(con: Any, sql: str, n_users: int, n_columns: int) -> sparse.csr_matrix:
    """A (users x columns) float64 CSR matrix from a query's (uidx, column, weight) rows."""
    rows = con.sql(sql).fetchnumpy()
    names = list(rows)
    return sparse.csr_matrix((np.asarray(rows[names[2]], np.float64), (rows[names[0]], rows[names[1]])),
                             shape=(n_users, n_columns))


def _write_chunk(store: Store, a: int, b: int, old: _Old, weights: sparse.csr_matrix, sources: np.ndarray,
                 features: sparse.csr_matrix, habits: sparse.csr_matrix, keys: Keys) -> None:
    """Compute and insert the new profiles and affinities of users ``a <= uidx < b`` (``old``: their stored state)."""
    con = store.con
    part = con.sql(_CHUNK_SQL, params=[a, b]).to_arrow_table()  # in DuckDB's order: the matrices follow it
    uidx = part.column("uidx").to_numpy()
    consent = part.column("consent").to_numpy()
    w = weights[uidx]
    ranked = ranked_affinities(w @ features + habits[uidx] + old.affinities(uidx), consent, keys)
    at = np.empty(b - a, dtype=np.int64)
    at[uidx - a] = np.arange(len(uidx))
    old_rows, old_sums = old.sums(a, b)
    vectors, norms = interest_vectors(w.astype(np.float32), sources, at[old_rows - a], old_sums, consent)
    affinity = pa.table({"user_id": part.column("user_id"), "key_ids": ranked.pop("key_ids"),  # noqa: F841
                         "weights": ranked.pop("weights")})
    rows = part.drop_columns(["uidx", "consent", "p_row"])
    rows = rows.append_column("interest_vector", vectors).append_column("interest_norm", norms)
    for name, column in ranked.items():
        rows = rows.append_column(name, column)
    con.register("_part", rows)
    try:
        con.execute("INSERT INTO profiles BY NAME SELECT * FROM _part")
    finally:
        con.unregister("_part")
    con.execute("INSERT INTO profile_affinity SELECT * FROM affinity")


@contextmanager
def _writing(store: Store, atomic: bool, added: int) -> Iterator[None]:
    """One transaction (if ``atomic``) adding ``added`` rows, written uncompressed, vacuumed only when dead rows
    outnumber live ones.

    Floats do not compress, and trying cost half the write time. Replacing a touched user's row leaves a
    deleted row behind; a checkpoint that vacuums rewrites every row group holding one — about the whole table,
    as touched users are spread over it. So the rewrite waits until the dead rows outnumber the live ones
    (about every third update of 40% of the users) and is paid then, once for all, by the commit's checkpoint.
    A checkpoint by another writer with DuckDB's default settings may vacuum them sooner: the same cost, paid there.
    """
    con = store.con
    settings = {"force_compression": "'uncompressed'", "max_vacuum_tasks": "0"}
    previous = {k: fetch_row(con, f"SELECT current_setting('{k}')")[0] for k in settings}  # type: ignore[index]
    for name, value in settings.items():
        con.execute(f"SET {name} = {value}")
    stored = fetch_row(con, _STORED_SQL)[0]  # type: ignore[index]
    try:
        if atomic:
            con.begin()
        try:
            yield
            vacuum = stored + added > 2 * fetch_row(con, "SELECT count(*) FROM profiles")[0]  # type: ignore[index]
            if vacuum:
                con.execute(f"SET max_vacuum_tasks = {previous['max_vacuum_tasks']}")
        except BaseException:
            if atomic:
                con.rollback()
            raise
        with _step("commit+vacuum" if vacuum else "commit"):
            if atomic:
                con.commit()
            con.execute("CHECKPOINT")  # now, while the settings hold (a commit may have checkpointed already)
    finally:
        con.execute(f"SET force_compression = '{previous['force_compression'] or 'auto'}'")
        con.execute(f"SET max_vacuum_tasks = {previous['max_vacuum_tasks']}")
