"""User profiles, built in batch from the store and updated incrementally from new events.

Every time-decayed quantity is stored as an *anchored* sum ``S = sum_i w_i * 2 ** ((t_i - anchor) / half_life)``
with one ``anchor`` per store (``profile_meta``). Anchored sums add: an update never rescales untouched users, it
adds the new events' terms, and reading the value decayed to time ``t`` is ``S * 2 ** ((anchor - t) / half_life)``.
Ratios of two sums (shares, mean prices, the interest direction) need no rescaling at all. A full build resets
the anchor to the newest event. Counts, first/last times and RFM inputs are plain sums and extremes.

Event weights (``EVENT_WEIGHTS``): what a user does costs them more effort the closer it is to buying, so it says
more about interest. Ad impressions and conversions (ad-side bookkeeping) carry no interest. Events with
``bot_flag`` are left out.

Consent: a user whose ``users.consent_personalisation`` is false gets no interest signal at all (NULL interest
vector, no keywords, categories or brands); activity, RFM and device/geo/hour habits are kept (frequency
capping and fraud checks need them).

Approximations of the incremental path, documented: sessions and active days are counted per batch, so a session
or day split across two batches counts twice; keyword affinities are pruned to ``KEEP_KEYWORDS`` per user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pyarrow as pa

from adpilot.errors import UserError, check_scalar
from adpilot.schema import EVENT_ARROW_SCHEMA
from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.interest import interest_sums
from adpilot.understand.items import PRODUCT_KEYWORDS_DDL
from adpilot.understand.keywords import text_keywords
from adpilot.understand.vectors import fetch_row

LOG = logging.getLogger(__name__)

EVENT_WEIGHTS: dict[str, float] = {"page_view": 1.0, "click": 1.0, "ad_click": 1.0, "search": 2.0,
                                   "add_to_cart": 3.0, "review": 3.0, "purchase": 5.0}
RECENT_ITEMS = 50
PURCHASED_ITEMS = 200
KEEP_KEYWORDS = 50
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4, 5)

PROFILE_TABLES = {
    "profiles": """
        user_id VARCHAR PRIMARY KEY, interest_vector FLOAT[], interest_norm DOUBLE, segment_id INTEGER,
        keywords VARCHAR[], recent_items VARCHAR[], purchased_items VARCHAR[],
        n_events BIGINT, n_sessions BIGINT, active_days BIGINT, first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ,
        n_purchases BIGINT, monetary DOUBLE, last_purchase_ts TIMESTAMPTZ,
        w_events DOUBLE, w_value DOUBLE, w_price DOUBLE, w_logprice DOUBLE,
        top_categories VARCHAR[], top_brands VARCHAR[], device VARCHAR, geo VARCHAR, peak_hour INTEGER,
        night_share DOUBLE, recency_days DOUBLE, decayed_events DOUBLE, avg_price DOUBLE, price_band VARCHAR,
        rfm_r INTEGER, rfm_f INTEGER, rfm_m INTEGER
    """,
    "profile_affinity": "user_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, key VARCHAR NOT NULL, weight DOUBLE",
    "profile_meta": "anchor TIMESTAMPTZ, as_of TIMESTAMPTZ, encoder VARCHAR, half_life_days DOUBLE, utc_offset_hours DOUBLE",
}

# The per-user scalar sums of one batch; "a" is the anchored decay factor and "w" = a * event weight.
_DELTA_SQL = f"""
SELECT user_id, count(*) AS n_events,
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
FROM _ev GROUP BY user_id
"""

# Item-derived kinds are summed per (user, item) first: a user views, clicks and carts the same item, and each
# item fans out to several keywords. Device, geo and hour come from one grouping-sets scan.
_AFFINITY_SQL = """
WITH ui AS (SELECT user_id, item_id, sum(w) AS w FROM _ev WHERE consent AND item_id IS NOT NULL AND w > 0
            GROUP BY ALL),
habits AS (SELECT user_id, device, geo, hour, sum(a) AS weight FROM _ev
           GROUP BY GROUPING SETS ((user_id, device), (user_id, geo), (user_id, hour)))
SELECT user_id, kind, key, sum(weight) AS weight FROM (
  SELECT ui.user_id, 'category' AS kind, array_to_string(p.category[1:2], '/') AS key, ui.w AS weight
    FROM ui JOIN products p ON p.product_id = ui.item_id WHERE len(p.category) > 0
  UNION ALL SELECT ui.user_id, 'brand', p.brand, ui.w FROM ui JOIN products p ON p.product_id = ui.item_id
    WHERE p.brand IS NOT NULL
  UNION ALL SELECT ui.user_id, 'keyword', k.keyword, ui.w FROM ui JOIN product_keywords k ON k.product_id = ui.item_id
  UNION ALL SELECT e.user_id, 'keyword', k.keyword, e.w FROM _ev e
    JOIN _tkw k ON k.text = CASE WHEN e.type = 'search' THEN e.query ELSE e.text END
    WHERE e.consent AND e.type IN ('search', 'review')
  UNION ALL SELECT user_id, 'device', device, weight FROM habits WHERE device IS NOT NULL
  UNION ALL SELECT user_id, 'geo', geo, weight FROM habits WHERE geo IS NOT NULL
  UNION ALL SELECT user_id, 'hour', CAST(hour AS VARCHAR), weight FROM habits WHERE hour IS NOT NULL
) WHERE weight > 0 GROUP BY ALL
"""

# Ordered lists, not max_by(key, weight, n): the top-n state does not spill and ran out of memory at 1M users.
_DERIVED_SQL = f"""
SELECT user_id,
  list(key ORDER BY weight DESC, key) FILTER (kind = 'keyword')[1:10] AS keywords,
  list(key ORDER BY weight DESC, key) FILTER (kind = 'category')[1:5] AS top_categories,
  list(key ORDER BY weight DESC, key) FILTER (kind = 'brand')[1:5] AS top_brands,
  arg_max(key, weight) FILTER (kind = 'device') AS device, arg_max(key, weight) FILTER (kind = 'geo') AS geo,
  CAST(arg_max(key, weight) FILTER (kind = 'hour') AS INTEGER) AS peak_hour,
  coalesce(sum(weight) FILTER (kind = 'hour' AND key IN {tuple(str(h) for h in NIGHT_HOURS)})
    / sum(weight) FILTER (kind = 'hour'), 0) AS night_share
FROM profile_affinity WHERE user_id IN (SELECT user_id FROM _delta) GROUP BY user_id
"""

_MERGE_SQL = f"""
SELECT d.user_id,
  CASE WHEN d.user_id IN (SELECT user_id FROM _noconsent) THEN NULL ELSE v.interest_vector END,
  CASE WHEN d.user_id IN (SELECT user_id FROM _noconsent) THEN NULL ELSE v.interest_norm END, p.segment_id,
  CASE WHEN d.user_id IN (SELECT user_id FROM _noconsent) THEN NULL ELSE x.keywords END AS keywords,
  list_concat(coalesce(p.recent_items, []), d.recent_items)[-{RECENT_ITEMS}:] AS recent_items,
  list_distinct(list_concat(d.purchased_items, coalesce(p.purchased_items, [])))[1:{PURCHASED_ITEMS}]
    AS purchased_items,
  coalesce(p.n_events, 0) + d.n_events, coalesce(p.n_sessions, 0) + d.n_sessions,
  coalesce(p.active_days, 0) + d.active_days, least(p.first_ts, d.first_ts), greatest(p.last_ts, d.last_ts),
  coalesce(p.n_purchases, 0) + d.n_purchases, coalesce(p.monetary, 0) + d.monetary,
  greatest(p.last_purchase_ts, d.last_purchase_ts),
  coalesce(p.w_events, 0) + d.w_events, coalesce(p.w_value, 0) + d.w_value,
  coalesce(p.w_price, 0) + d.w_price, coalesce(p.w_logprice, 0) + d.w_logprice,
  x.top_categories, x.top_brands, x.device, x.geo, x.peak_hour, x.night_share,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM _delta d LEFT JOIN profiles p USING (user_id) LEFT JOIN _vec v USING (user_id)
LEFT JOIN _derived x USING (user_id)
"""

# Population-relative columns, recomputed over all users after each change (scalar columns only: cheap).
_REFRESH_SQL = """
UPDATE profiles SET
  recency_days = date_diff('second', profiles.last_ts, m.as_of) / 86400.0,
  decayed_events = profiles.w_events * pow(2, date_diff('second', m.as_of, m.anchor) / (86400.0 * m.half_life_days)),
  avg_price = CASE WHEN profiles.w_price > 0 THEN exp(profiles.w_logprice / profiles.w_price) END,
  price_band = CASE WHEN profiles.w_price <= 0 THEN NULL
                    WHEN exp(profiles.w_logprice / profiles.w_price) < q.lo THEN 'low'
                    WHEN exp(profiles.w_logprice / profiles.w_price) < q.hi THEN 'mid' ELSE 'high' END,
  rfm_r = coalesce(r.rfm_r, 0), rfm_f = coalesce(r.rfm_f, 0), rfm_m = coalesce(r.rfm_m, 0)
FROM profile_meta m,
  (SELECT coalesce(quantile_cont(price, 1 / 3), 0) AS lo, coalesce(quantile_cont(price, 2 / 3), 0) AS hi
   FROM products) q,
  (SELECT u.user_id, r.rfm_r, r.rfm_f, r.rfm_m FROM profiles u LEFT JOIN (
     SELECT user_id, ntile(5) OVER (ORDER BY last_purchase_ts) AS rfm_r,
       ntile(5) OVER (ORDER BY n_purchases) AS rfm_f, ntile(5) OVER (ORDER BY monetary) AS rfm_m
     FROM profiles WHERE n_purchases > 0) r USING (user_id)) r
WHERE r.user_id = profiles.user_id
"""


def ensure_profile_tables(store: Store) -> None:
    """Create the profile tables if missing (they belong to this room, not to the shared DDL)."""
    for name, ddl in PROFILE_TABLES.items():
        store.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({ddl.strip()})")


def build_profiles(store: Store, encoder: TextEncoder, half_life_days: float = 30.0,
                   utc_offset_hours: float = 8.0) -> int:
    """Rebuild every profile from all events in the store; returns the number of profiles.

    Hours and days (habits, active days) are local at ``utc_offset_hours`` (default China Standard Time):
    a fixed offset, so no time-zone database is consulted per row.

    Product vectors for ``encoder`` must exist (:func:`~adpilot.understand.items.build_product_vectors`).
    """
    check_scalar(half_life_days, "half_life_days", gt=0)
    check_scalar(utc_offset_hours, "utc_offset_hours", ge=-12, le=14)
    ensure_profile_tables(store)
    con = store.con
    anchor = fetch_row(con, "SELECT max(ts) FROM events")[0]  # type: ignore[index]
    for table in PROFILE_TABLES:
        con.execute(f"DELETE FROM {table}")
    if anchor is None:
        return 0
    con.execute("INSERT INTO profile_meta VALUES (?, ?, ?, ?, ?)", [anchor, anchor, encoder.name, half_life_days,
                                                                 utc_offset_hours])
    return _apply(store, encoder, "SELECT * FROM events", [])


def update_profiles(store: Store, encoder: TextEncoder, events: Any = None, since: datetime | None = None) -> int:
    """Merge new events into the profiles; returns the number of profiles touched.

    ``events`` is an Arrow table or DataFrame with the ``events`` columns (already in the store or not); without
    it, the store's events newer than ``since`` (default: the profiles' ``as_of``) are taken. Late events with
    ``ts <= as_of`` are only seen when passed explicitly.
    """
    ensure_profile_tables(store)
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
    LOG.info("profiles: %-10s %6.2f s wall %6.2f s CPU", name, time.perf_counter() - start, time.process_time() - cpu)


def _apply(store: Store, encoder: TextEncoder, source_sql: str, params: list[Any]) -> int:
    """Fold the events selected by ``source_sql`` into the profiles (the one path of build and update)."""
    con = store.con
    source = con.sql(f"SELECT * FROM ({source_sql}) LIMIT 0", params=params or None).columns
    bot = "NOT coalesce(e.bot_flag, FALSE)" if "bot_flag" in source else "TRUE"
    con.execute("CREATE OR REPLACE TEMP TABLE _noconsent AS "
                "SELECT user_id FROM users WHERE NOT coalesce(consent_personalisation, TRUE)")
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in EVENT_WEIGHTS.items())
    with _step("events"):
        con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ev AS
        WITH m AS (SELECT anchor, half_life_days * 86400.0 AS hl, utc_offset_hours * 3600 AS off FROM profile_meta)
        SELECT e.user_id, hash(e.session_id) AS session, e.ts, e.type, e.item_id, e.query, e.text, e.device, e.geo, e.value,
          coalesce(e.price, p.price) AS price,
          CAST(floor((epoch(e.ts) + m.off) / 3600) AS BIGINT) % 24 AS hour,
          CAST(floor((epoch(e.ts) + m.off) / 86400) AS BIGINT) AS day,
          pow(2, date_diff('second', m.anchor, e.ts) / m.hl) AS a,
          a * CASE e.type {weights} ELSE 0 END AS w,
          e.user_id NOT IN (SELECT user_id FROM _noconsent) AS consent
        FROM ({source_sql}) e CROSS JOIN m LEFT JOIN products p ON p.product_id = e.item_id
        WHERE {bot}""", params)
    new_as_of = fetch_row(con, "SELECT max(ts) FROM _ev")[0]  # type: ignore[index]
    if new_as_of is None:
        return 0
    con.execute("UPDATE profile_meta SET as_of = greatest(as_of, ?)", [new_as_of])
    with _step("delta"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _delta AS {_DELTA_SQL}")
    with _step("affinities"):
        _merge_affinities(store)
    with _step("derived"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _derived AS {_DERIVED_SQL}")
    with _step("interest"):
        interest_sums(store, encoder)
    with _step("merge"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE _merged AS {_MERGE_SQL}")
        con.execute("DELETE FROM profiles WHERE user_id IN (SELECT user_id FROM _delta)")
        con.execute("INSERT INTO profiles SELECT * FROM _merged")
    with _step("refresh"):
        con.execute(_REFRESH_SQL)
    touched = fetch_row(con, "SELECT count(*) FROM _delta")[0]  # type: ignore[index]
    for temp in ("_ev", "_delta", "_derived", "_merged", "_tkw", "_noconsent", "_vec"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return int(touched)


def _merge_affinities(store: Store) -> None:
    """Add the batch's decayed (user, kind, key) weights to ``profile_affinity``, pruning keywords."""
    con = store.con
    con.execute(PRODUCT_KEYWORDS_DDL)
    texts = con.sql("SELECT DISTINCT CASE WHEN type = 'search' THEN query ELSE text END FROM _ev "
                        "WHERE type IN ('search', 'review') AND consent").fetchall()
    tkw = text_keywords([t for (t,) in texts if t])  # noqa: F841
    con.execute("CREATE OR REPLACE TEMP TABLE _tkw AS SELECT * FROM tkw")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _aff AS
        WITH summed AS MATERIALIZED (
          SELECT user_id, kind, key, sum(weight) AS weight FROM (
            SELECT * FROM profile_affinity WHERE user_id IN (SELECT user_id FROM _delta)
            UNION ALL SELECT * FROM ({_AFFINITY_SQL})) GROUP BY ALL)
        SELECT * FROM summed WHERE kind <> 'keyword'
        UNION ALL  -- only keyword rows go through the window's sort
        SELECT * FROM summed WHERE kind = 'keyword'
        QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY weight DESC, key) <= {KEEP_KEYWORDS}""")
    con.execute("DELETE FROM profile_affinity WHERE user_id IN (SELECT user_id FROM _delta)")
    con.execute("INSERT INTO profile_affinity SELECT * FROM _aff")
    # consent withdrawn since the last run: interest signals kept from before go too
    con.execute("DELETE FROM profile_affinity WHERE kind IN ('category', 'brand', 'keyword') "
                "AND user_id IN (SELECT user_id FROM _noconsent)")
    con.execute("DROP TABLE _aff")
