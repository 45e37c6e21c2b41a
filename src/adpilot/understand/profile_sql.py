"""The profile tables and the SQL that builds and updates them (see :mod:`adpilot.understand.profiles` for the flow).

Kept apart from the Python that drives it so that each query can be read whole; the temporary tables they share
(``_users``, ``_ev``, ``_delta``, ``_merged``, ...) are created and dropped by that flow.
"""

from __future__ import annotations

from adpilot.understand.interest import INTEREST_KINDS

RECENT_ITEMS = 50
PURCHASED_ITEMS = 200


PROFILE_TABLES = {
    "profiles": """
        user_id VARCHAR NOT NULL, interest_vector BLOB, interest_norm DOUBLE, segment_id INTEGER,
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

# Per-user scalar sums of one batch; "a" is the anchored decay factor and "w" = a * event weight. The distinct
# counts and the purchased items are grouped from DISTINCT rows, not as DISTINCT aggregates: 0.75 vs 1.05 CPU-s for
# 1M events (the same values; float sums may differ in the last bits, as any parallel sum does).
DELTA_SQL = f"""
WITH s AS (SELECT uidx, count(*) AS n_sessions
           FROM (SELECT DISTINCT uidx, coalesce(session, CAST(day AS UBIGINT)) FROM _ev) GROUP BY uidx),
d AS (SELECT uidx, count(*) AS active_days FROM (SELECT DISTINCT uidx, day FROM _ev) GROUP BY uidx),
p AS (SELECT uidx, list(item_id) AS purchased_items
      FROM (SELECT DISTINCT uidx, item_id FROM _ev WHERE type = 'purchase' AND item_id IS NOT NULL) GROUP BY uidx),
e AS (SELECT uidx, count(*) AS n_events, min(ts) AS first_ts, max(ts) AS last_ts,
  count(*) FILTER (type = 'purchase') AS n_purchases,
  coalesce(sum(coalesce(value, price)) FILTER (type = 'purchase'), 0) AS monetary,
  max(ts) FILTER (type = 'purchase') AS last_purchase_ts,
  sum(a) AS w_events,
  coalesce(sum(a * coalesce(value, price)) FILTER (type = 'purchase'), 0) AS w_value,
  coalesce(sum(w) FILTER (price > 0 AND item_id IS NOT NULL), 0) AS w_price,
  coalesce(sum(w * ln(price)) FILTER (price > 0 AND item_id IS NOT NULL), 0) AS w_logprice,
  list_reverse(max_by(item_id, ts, {RECENT_ITEMS}) FILTER (item_id IS NOT NULL AND w > 0)) AS recent_items
  FROM _ev GROUP BY uidx)
SELECT e.*, s.n_sessions, d.active_days, p.purchased_items
FROM e JOIN s USING (uidx) JOIN d USING (uidx) LEFT JOIN p USING (uidx)
"""

# The batch's sums added to the stored row of each touched user (found by row id: ``_users`` has it), with the
# row ids of their stored profile and affinities.
MERGE_SQL = f"""
SELECT d.uidx, u.user_id, u.consent, u.p_row, a.rowid AS a_row, p.segment_id,
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
FROM _delta d JOIN _users u USING (uidx) LEFT JOIN profiles p ON p.rowid = u.p_row
  LEFT JOIN profile_affinity a ON a.user_id = u.user_id
"""

# The stored vectors of one chunk of touched users, in no order (numpy puts them in place). uidx follows the
# stored row id, so a chunk's rows lie in one row id range, which the scan skips to: reading all 413k touched
# users' vectors at once took 5-10 CPU-s and raised the peak RSS by 4 GB; by chunk, about 0.9 CPU-s a chunk.
# ``_stored_rows`` (uidx, p_row) is an Arrow table registered by the reader: it runs on a connection of its own,
# which does not see this connection's temp tables.
OLD_VECTORS_SQL = """
SELECT s.uidx, p.interest_vector, p.interest_norm FROM profiles p JOIN _stored_rows s ON s.p_row = p.rowid
WHERE p.interest_vector IS NOT NULL AND p.rowid BETWEEN ? AND ?
"""
OLD_AFFINITY_SQL = """
SELECT m.uidx, a.key_ids, a.weights FROM profile_affinity a JOIN _merged m ON m.a_row = a.rowid
WHERE a.rowid BETWEEN ? AND ? AND m.uidx >= ? AND m.uidx < ?
"""

# One chunk of merged rows with their population-relative columns, in no order (sorting the lists cost more; so
# did joining them back to numpy's results inside DuckDB: 21 CPU-s against 13 for 400k users).
CHUNK_SQL = """
SELECT m.*, r.recency_days, r.decayed_events, r.avg_price, r.price_band, r.rfm_r, r.rfm_f, r.rfm_m
FROM _merged m JOIN _ranks r USING (uidx) WHERE m.uidx >= ? AND m.uidx < ?
"""

# Keys the batch may need, new ones appended to the vocabulary with fresh ids.
KEYS_SQL = """
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
FEATURES_SQL = """
SELECT i.sidx AS src, k.key_id FROM _items i JOIN profile_keys k ON k.kind = 'category' AND k.key = i.category_key
UNION ALL SELECT i.sidx, k.key_id FROM _items i JOIN profile_keys k ON k.kind = 'brand' AND k.key = i.brand
UNION ALL SELECT i.sidx, k.key_id FROM product_keywords pk JOIN _items i USING (product_id)
  JOIN profile_keys k ON k.kind = 'keyword' AND k.key = pk.keyword
UNION ALL SELECT t.sidx, k.key_id FROM _tx t JOIN _tkw w ON w.text = t.body
  JOIN profile_keys k ON k.kind = 'keyword' AND k.key = w.keyword
"""

SOURCES_SQL = """
SELECT uidx, sidx AS src, sum(w) AS w FROM _ev WHERE consent AND w > 0 AND sidx IS NOT NULL GROUP BY ALL
UNION ALL
SELECT e.uidx, t.sidx, sum(e.w) FROM _ev e JOIN _tx t
  ON t.body = e.body AND t.kind = CASE WHEN e.type = 'search' THEN 'query' ELSE 'passage' END
WHERE e.consent AND e.w > 0 GROUP BY ALL
"""

HABITS_SQL = """
WITH h AS (SELECT uidx, device, geo, hour, sum(a) AS weight FROM _ev
           GROUP BY GROUPING SETS ((uidx, device), (uidx, geo), (uidx, hour)))
SELECT h.uidx, k.key_id, h.weight FROM h JOIN profile_keys k ON k.kind = 'device' AND k.key = h.device
UNION ALL SELECT h.uidx, k.key_id, h.weight FROM h JOIN profile_keys k ON k.kind = 'geo' AND k.key = h.geo
UNION ALL SELECT h.uidx, k.key_id, h.weight FROM h
  JOIN profile_keys k ON k.kind = 'hour' AND k.key = CAST(h.hour AS VARCHAR)
"""

# Population-relative columns of every user, from the untouched stored rows and the batch's merged rows, but for
# the RFM quintiles (numpy: :func:`_rfm`). The price band is the user's geometric mean price against the
# catalogue's price terciles; recency and decay are as of the new ``as_of`` (the parameter: the batch's newest event,
# if later), which an update computes before its transaction writes it.
POPULATION_SQL = """
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
  user_id, n_purchases, epoch_us(CAST(last_purchase_ts AS TIMESTAMPTZ)) AS last_purchase_us, monetary
FROM pop, (SELECT greatest(as_of, ?) AS as_of, anchor, half_life_days FROM profile_meta) m, q
"""

# The untouched users' population-relative columns, updated in place (scalar columns: no row rewritten) but for
# the rows below the moved range's end (parameter), which are moved. The rows reach the UPDATE in row id order: in
# the window's order, the same 600k-row update cost 30 CPU-s, not 0.3.
REST_SQL = """
CREATE OR REPLACE TEMP TABLE _rest AS
SELECT * EXCLUDE (uidx) FROM _ranks WHERE p_row IS NOT NULL AND p_row >= ? ORDER BY p_row
"""
REFRESH_SQL = """
UPDATE profiles SET recency_days = r.recency_days, decayed_events = r.decayed_events, avg_price = r.avg_price,
  price_band = r.price_band, rfm_r = r.rfm_r, rfm_f = r.rfm_f, rfm_m = r.rfm_m
FROM _rest r WHERE r.p_row = profiles.rowid
"""

# The untouched users' rows of one row id range [$1, $2) of the oldest stretch, copied to the end of the table with
# their new population-relative columns (the touched users' rows there are replaced anyway; see
# :mod:`adpilot.understand.compaction`).
MOVE_PROFILES_SQL = """
INSERT INTO profiles BY NAME
SELECT p.* REPLACE (r.recency_days AS recency_days, r.decayed_events AS decayed_events, r.avg_price AS avg_price,
  r.price_band AS price_band, r.rfm_r AS rfm_r, r.rfm_f AS rfm_f, r.rfm_m AS rfm_m)
FROM profiles p JOIN _ranks r ON r.p_row = p.rowid
WHERE p.rowid >= $1 AND p.rowid < $2 AND r.p_row >= $1 AND r.p_row < $2
"""
MOVE_AFFINITY_SQL = """
INSERT INTO profile_affinity
SELECT a.* FROM profile_affinity a WHERE a.rowid >= $1 AND a.rowid < $2
  AND NOT EXISTS (SELECT 1 FROM _merged m WHERE m.a_row = a.rowid)
"""

# Consent withdrawn since a user's last event: their stored interest signals go now, not at their next event.
WITHDRAW_SQL = f"""
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

TEMP_TABLES = ("_users", "_items", "_ev", "_delta", "_merged", "_ranks", "_rest", "_tkw", "_tx", "_noconsent")
