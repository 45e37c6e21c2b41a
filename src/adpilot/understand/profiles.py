"""User profiles, built in batch from the store and updated incrementally from new events.

Every time-decayed quantity is stored as an *anchored* sum ``S = sum_i w_i * 2 ** ((t_i - anchor) / half_life)``
with one ``anchor`` per store (``profile_meta``). Anchored sums add: an update never rescales untouched users, it
adds the new events' terms, and reading the value decayed to time ``t`` is ``S * 2 ** ((anchor - t) / half_life)``.
Ratios of two sums (shares, mean prices, the interest direction) need no rescaling at all. A full build resets
the anchor to the newest event. Counts, first/last times and RFM inputs are plain sums and extremes.

Build and update are one path (:func:`_apply`) touching only the users in the batch: two DuckDB passes over the
batch (users, then events keyed by integer user and product indices), three GROUP BYs (per-user scalars,
per-(user, source) weights, per-(user, habit) weights), then numpy/scipy over chunks of users
(:mod:`~adpilot.understand.interest`) and Arrow inserts. An interest vector is stored as its direction, ``dim``
int8 codes in a BLOB (:mod:`adpilot.understand.vectors`), with the norm of its sum (``interest_norm``): a quarter of
float32's bytes, and DuckDB inserts a BLOB several times faster than an ARRAY (see :func:`ensure_profile_tables`).
An update
appends the touched users' new rows and deletes their old ones by row id (``profiles`` has no PRIMARY KEY
index: deleting from it cost seconds per hundred thousand rows), all in one transaction: a failed update changes
nothing. Deleted rows are never vacuumed: each update also moves the oldest, mostly dead stretch of each table to
its end, and the checkpoint drops the row groups left empty (:mod:`adpilot.understand.compaction`).

Users are numbered in the order of their stored rows, so a chunk of users is a range of stored rows: its old
vectors and affinities are read chunk by chunk (range scans), never all at once. Each chunk's stored vectors are
read (on a DuckDB connection of its own) and its numpy work runs on a worker thread while the main connection
reads the next chunk and inserts the previous one (the machine has two cores); a build goes chunk by chunk (see
:func:`_write_chunks`).

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

The tables' layout and every query of this flow are in :mod:`adpilot.understand.profile_sql`.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from adpilot.errors import UserError, check_scalar
from adpilot.schema import EVENT_ARROW_SCHEMA
from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.compaction import Moves
from adpilot.understand.interest import (
    Keys,
    interest_vectors,
    list_matrix,
    ranked_affinities,
)
from adpilot.understand.items import PRODUCT_KEYWORDS_DDL, PRODUCT_VECTORS_DDL
from adpilot.understand.keywords import text_keywords
from adpilot.understand.profile_sql import (
    CHUNK_SQL,
    DELTA_SQL,
    FEATURES_SQL,
    HABITS_SQL,
    KEYS_SQL,
    MERGE_SQL,
    MOVE_AFFINITY_SQL,
    MOVE_PROFILES_SQL,
    OLD_AFFINITY_SQL,
    OLD_VECTORS_SQL,
    POPULATION_SQL,
    PROFILE_TABLES,
    REFRESH_SQL,
    REST_SQL,
    SOURCES_SQL,
    TEMP_TABLES,
    WITHDRAW_SQL,
)
from adpilot.understand.vectors import (
    blob_codes,
    codes_column,
    direction_codes,
    fetch_row,
    from_list_column,
    stored_rows,
)

LOG = logging.getLogger(__name__)

EVENT_WEIGHTS: dict[str, float] = {"page_view": 1.0, "click": 1.0, "ad_click": 1.0, "search": 2.0,
                                   "add_to_cart": 3.0, "review": 3.0, "purchase": 5.0}
CHUNK_USERS = 130_000  # at least, unless fewer users: each insert stays above one row group (122,880 rows)


def ensure_profile_tables(store: Store, dim: int) -> None:
    """Create the profile tables if missing (they belong to this room, not to the shared DDL), interest vectors as
    BLOBs of ``dim`` int8 codes; profiles stored with float32 ARRAY vectors are converted to codes.

    Codes in a BLOB, not float ARRAYs: an update rewrites every touched user's vector, and with them an update of
    1M events (413k users, e5) took 0.67x the time and 0.67x the minor faults (docs/STATUS.md, session 10).
    """
    for name, ddl in PROFILE_TABLES.items():
        store.con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({ddl.strip().format(dim=dim)})")
    columns = dict(store.con.sql("SELECT column_name, column_type FROM (DESCRIBE profiles) UNION ALL "
                                 "SELECT column_name, column_type FROM (DESCRIBE profile_affinity)").fetchall())
    if "key_ids" not in columns or columns["interest_vector"] == "FLOAT[]":  # lists: before the ARRAY layout
        raise UserError("these profiles were built by an older adpilot: run `adpilot profile build` again")
    if columns["interest_vector"].startswith("FLOAT["):  # float32 ARRAYs, before session 10
        _float_vectors_to_codes(store, dim)


def _float_vectors_to_codes(store: Store, dim: int) -> None:
    """Rewrite ``profiles`` with its float32 unit vectors (the layout before session 10) as BLOBs of int8 codes, in
    one transaction, a row id range at a time and in row order (users are numbered by stored row). In numpy: the
    same conversion with DuckDB's list lambdas ran for minutes per 100k rows; this one, 30 s for 1M profiles."""
    con = store.con
    last = fetch_row(con, "SELECT coalesce(max(rowid), -1) FROM profiles")[0]  # type: ignore[index]
    con.begin()
    try:
        con.execute(f"CREATE TABLE _profiles_codes ({PROFILE_TABLES['profiles'].strip().format(dim=dim)})")
        for start in range(0, last + 1, CHUNK_USERS):
            part = con.sql("SELECT * FROM profiles WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
                           params=[start, start + CHUNK_USERS]).to_arrow_table()
            lengths, floats = stored_rows(part.column("interest_vector"), dim)
            valid = lengths == dim
            codes = np.zeros((len(valid), dim), dtype=np.int8)
            codes[valid] = direction_codes(floats)
            part = part.set_column(part.column_names.index("interest_vector"), "interest_vector",  # noqa: F841
                                   codes_column(codes, valid))
            con.execute("INSERT INTO _profiles_codes BY NAME SELECT * FROM part")
        con.execute("DROP TABLE profiles")
        con.execute("ALTER TABLE _profiles_codes RENAME TO profiles")
    except BaseException:
        con.rollback()
        raise
    con.commit()
    LOG.info("profiles: interest vectors converted from float32 to int8 codes")


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
        ranks = None
        with ThreadPoolExecutor(1) as pool:  # the texts' keywords (jieba, Python) while DuckDB merges
            kinds, bodies = _texts(store)
            keywords = pool.submit(text_keywords, bodies)
            with _step("delta"):
                con.execute(f"CREATE OR REPLACE TEMP TABLE _delta AS {DELTA_SQL}")
            with _step("merge"):
                con.execute(f"CREATE OR REPLACE TEMP TABLE _merged AS {MERGE_SQL}")
                con.execute("DROP TABLE _delta")
            if atomic:  # an update ranks the population (numpy) while DuckDB prepares the sources (see _rank)
                with _step("population"):
                    ranks = pool.submit(_rank, _population(store, new_as_of))
            with _step("sources"):
                sources, keys, features = _sources(store, encoder, kinds, bodies, keywords.result())
        with _step("weights"):
            weights = _user_matrix(con, SOURCES_SQL, n_users, sources.shape[0])
        with _step("habits"):
            habits = _user_matrix(con, HABITS_SQL, n_users, len(keys.kind))
        con.execute("DROP TABLE _ev")  # frees DuckDB's memory for the writes
        with _writing(store, atomic):
            con.execute("UPDATE profile_meta SET as_of = greatest(as_of, ?)", [new_as_of])
            with _step("ranks"):
                _population_ranks(store, new_as_of, ranks)
            moves = Moves.plan(con, MOVE_PROFILES_SQL, MOVE_AFFINITY_SQL) if atomic else Moves(0, 0, [])
            with _step("old"):
                old = _Old.read(store, n_users)
            with _step("write"):
                _write_chunks(store, n_users, _Batch(old, weights, sources, features, habits, keys), moves,
                              update=atomic)
            with _step("move"):
                moves.finish(con)
            with _step("refresh"):  # after the chunk reads: before them, the first read cost 1.1 CPU-s, not 0.9
                con.execute(REST_SQL, [moves.profiles_end])
                con.execute(REFRESH_SQL)
            with _step("delete"):
                con.execute("DELETE FROM profiles WHERE rowid < ? OR rowid IN "
                            "(SELECT p_row FROM _merged WHERE p_row IS NOT NULL)", [moves.profiles_end])
                con.execute("DELETE FROM profile_affinity WHERE rowid < ? OR rowid IN "
                            "(SELECT a_row FROM _merged WHERE a_row IS NOT NULL)", [moves.affinity_end])
            with _step("withdraw"):
                con.execute(WITHDRAW_SQL)
        return n_users
    finally:
        for temp in TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {temp}")


@dataclass(frozen=True)
class _Old:
    """Where the touched users' stored profiles and affinities are; both are read chunk by chunk (a row id range
    each): all the vectors at once raised the peak RSS by 4 GB, and the affinities read in a chunk's turn overlap
    the previous chunk's maths instead of running before the first (1-1.5 CPU-s)."""

    p_row: np.ndarray  # stored row id of each uidx, -1 for new users (non-decreasing up to the new users)
    a_row: np.ndarray  # row id of each uidx's stored affinities, -1 for none (in practice close to p_row's order)

    @classmethod
    def read(cls, store: Store, n_users: int) -> _Old:
        rows = store.con.sql("SELECT uidx, coalesce(p_row, -1) AS p_row, coalesce(a_row, -1) AS a_row "
                             "FROM _merged").fetchnumpy()
        p_row, a_row = np.empty(n_users, dtype=np.int64), np.empty(n_users, dtype=np.int64)
        p_row[rows["uidx"]], a_row[rows["uidx"]] = rows["p_row"], rows["a_row"]
        return cls(p_row, a_row)

    def affinities(self, store: Store, a: int, b: int) -> pa.Table:
        """(uidx, key_ids, weights) of the users ``a <= uidx < b`` that have stored affinities, in no order."""
        stored = self.a_row[a:b][self.a_row[a:b] >= 0]
        if len(stored) == 0:
            return pa.table({"uidx": pa.array([], pa.int32()), "key_ids": pa.array([], pa.list_(pa.int32())),
                             "weights": pa.array([], pa.list_(pa.float64()))})
        return store.con.sql(OLD_AFFINITY_SQL, params=[int(stored.min()), int(stored.max()), a, b]).to_arrow_table()

    def vectors(self, con: Any, a: int, b: int, dim: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(uidx, int8 codes, norms) of the users ``a <= uidx < b`` that have a stored vector, in parts as DuckDB's
        Arrow chunks come (:func:`~adpilot.understand.interest.interest_vectors` joins them: 53 MB of codes a chunk).

        ``con`` may be a connection of its own (see :func:`_write_chunks`): the query needs no temp table.
        """
        at = np.flatnonzero(self.p_row[a:b] >= 0)
        if len(at) == 0:
            return []
        p_row = self.p_row[a:b][at]
        stored_rows = pa.table({"uidx": at + a, "p_row": p_row})
        con.register("_stored_rows", stored_rows)
        try:
            table = con.sql(OLD_VECTORS_SQL, params=[int(p_row.min()), int(p_row.max())]).to_arrow_table()
        finally:
            con.unregister("_stored_rows")
        return [(batch.column("uidx").to_numpy(), blob_codes(batch.column("interest_vector"), dim)[0],
                 batch.column("interest_norm").to_numpy().astype(np.float32)) for batch in table.to_batches()]


def _prepare_events(store: Store, source_sql: str, params: list[Any]) -> int:
    """Temp tables ``_users`` (user_id, uidx, consent, p_row), ``_items`` and ``_ev`` (the batch keyed by indices).

    ``uidx`` numbers the users by the row id of their stored profile (``p_row``; new users last), so a range of
    users is a range of stored rows (see ``OLD_VECTORS_SQL``).
    """
    con = store.con
    source = con.sql(f"SELECT * FROM ({source_sql}) LIMIT 0", params=params or None).columns
    bot = "NOT coalesce(e.bot_flag, FALSE)" if "bot_flag" in source else "TRUE"
    con.execute("CREATE OR REPLACE TEMP TABLE _noconsent AS "
                "SELECT user_id FROM users WHERE NOT coalesce(consent_personalisation, TRUE)")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _users AS
        SELECT b.user_id, CAST(row_number() OVER (ORDER BY p.rowid NULLS LAST) - 1 AS INTEGER) AS uidx,
          b.user_id NOT IN (SELECT user_id FROM _noconsent) AS consent, p.rowid AS p_row
        FROM (SELECT DISTINCT user_id FROM ({source_sql}) e WHERE {bot}) b LEFT JOIN profiles p USING (user_id)""",
                params)
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


def _texts(store: Store) -> tuple[list[str], list[str]]:
    """(kinds, bodies) of the batch's distinct texts, in ``sidx`` order; leaves ``_tx`` (kind, body, sidx), the
    texts numbered after the products."""
    con = store.con
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _tx AS
        SELECT kind, body, CAST((SELECT count(*) FROM _items) + row_number() OVER (ORDER BY kind, body) - 1
                                AS INTEGER) AS sidx
        FROM (SELECT DISTINCT CASE WHEN type = 'search' THEN 'query' ELSE 'passage' END AS kind, body FROM _ev
              WHERE consent AND body <> '')""")
    texts = con.sql("SELECT kind, body FROM _tx ORDER BY sidx").to_arrow_table()
    return texts.column("kind").to_pylist(), texts.column("body").to_pylist()


def _sources(store: Store, encoder: TextEncoder, kinds: list[str], bodies: list[str],
             tkw: pa.Table) -> tuple[np.ndarray, Keys, sparse.csr_matrix]:
    """Source vectors (products by ``sidx``, then the batch's texts of :func:`_texts`), the key vocabulary and
    source features, given the texts' keywords ``tkw`` (text, keyword).

    Also leaves ``_tkw`` for the SQL that follows.
    """
    con = store.con
    con.execute(PRODUCT_KEYWORDS_DDL)
    n_items = int(fetch_row(con, "SELECT count(*) FROM _items")[0])  # type: ignore[index]
    con.execute("CREATE OR REPLACE TEMP TABLE _tkw AS SELECT * FROM tkw")
    con.execute(KEYS_SQL)
    keys = Keys.from_table(con.sql("SELECT key_id, kind, key FROM profile_keys").to_arrow_table())

    sources = np.zeros((n_items + len(bodies), encoder.dim), dtype=np.float32)
    con.execute(PRODUCT_VECTORS_DDL)
    placed = con.sql("SELECT i.sidx, v.vector FROM product_vectors v JOIN _items i USING (product_id) "
                     "WHERE v.encoder = ?", params=[encoder.name]).to_arrow_table()  # no ORDER BY: sidx places them
    if placed.num_rows:
        sources[placed.column("sidx").to_numpy()] = from_list_column(placed.column("vector"), encoder.dim)
    for kind in ("passage", "query"):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if rows:
            sources[n_items + np.array(rows)] = encode_cached(store, encoder, [bodies[i] for i in rows],
                                                              kind=kind)
    pairs = con.sql(FEATURES_SQL).fetchnumpy()
    features = sparse.csr_matrix((np.ones(len(pairs["src"])), (pairs["src"], pairs["key_id"])),
                                 shape=(sources.shape[0], len(keys.kind)))
    return sources, keys, features


def _population_ranks(store: Store, as_of: datetime, ranked: Future[pa.Table] | None) -> None:
    """Temp table ``_ranks``: every user's population-relative columns as of ``as_of``, as :func:`_rank` gives
    them (``ranked``, when an update had them computed on a thread) or computed now.

    A build's ``pop`` is held until DuckDB has copied the ranks: freed before, the build's peak RSS was ~100 MiB
    higher (4,122-4,153 vs 4,043-4,052 MiB, same session).
    """
    if ranked is not None:
        ranks = ranked.result()
    else:
        pop = _population(store, as_of)
        ranks = _rank(pop)  # noqa: F841 (DuckDB reads it by name)
    store.con.execute("CREATE OR REPLACE TEMP TABLE _ranks AS SELECT * FROM ranks")


def _population(store: Store, as_of: datetime) -> pa.Table:
    """Every user's population-relative inputs as of ``as_of`` (``POPULATION_SQL``), for :func:`_rank`."""
    return store.con.sql(POPULATION_SQL, params=[as_of]).to_arrow_table()


def _rank(pop: pa.Table) -> pa.Table:
    """The rows of temp table ``_ranks``: every user's population-relative columns, from :func:`_population`.

    The RFM quintiles are ranked in numpy (:func:`_rfm`): with DuckDB's three window sorts tied by user id this
    step cost 2.2 CPU-s over a million users, with numpy lexsorts 1.4-1.9, with stable sorts 1.1-1.5. An update
    runs this on a thread while DuckDB prepares the sources (~0.5 s wall less); a build does not: overlapped with
    the weights' and habits' GROUP BYs, its peak RSS went over 4 GiB.
    """
    n_purchases = pop.column("n_purchases").to_numpy()
    buyer = n_purchases > 0
    in_user_order = pc.sort_indices(pop.column("user_id")).to_numpy()
    buyers = in_user_order[buyer[in_user_order]]
    rfm = {"rfm_r": pc.fill_null(pop.column("last_purchase_us"), 0).to_numpy(), "rfm_f": n_purchases,
           "rfm_m": pop.column("monetary").to_numpy()}
    ranks = pop.drop_columns(["user_id", "n_purchases", "last_purchase_us", "monetary"])
    for name, key in rfm.items():
        ranks = ranks.append_column(name, pa.array(_rfm(key, buyers)))
    return ranks


def _rfm(key: np.ndarray, buyers: np.ndarray) -> np.ndarray:
    """Quintiles 1-5 of ``key`` among ``buyers`` (their rows, in user id order: ties go by it), 0 for the others.

    Exactly DuckDB's (and Postgres') ``ntile(5)``: the first ``n % 5`` tiles hold one row more. One stable sort
    of the keys in user order, not a lexsort of (key, user rank): 0.23 vs 0.66 CPU-s for 800k buyers, 3 keys.

    >>> _rfm(np.array([5.0, 1.0, 1.0, 9.0, 0.0, 2.0, 3.0]), np.array([0, 2, 1, 3, 5, 6]))
    array([4, 1, 1, 5, 0, 2, 3], dtype=int32)
    """
    order = buyers[np.argsort(key[buyers], kind="stable")]
    n, k = len(order), min(5, len(order))
    out = np.zeros(len(key), dtype=np.int32)
    if n:
        size, large = divmod(n, k)
        at = np.arange(n)
        small = large * (size + 1)  # rows in the larger tiles
        out[order] = 1 + np.where(at < small, at // (size + 1), large + (at - small) // size)
    return out


def _user_matrix(con: Any, sql: str, n_users: int, n_columns: int) -> sparse.csr_matrix:
    """A (users x columns) float64 CSR matrix from a query's (uidx, column, weight) rows."""
    rows = con.sql(sql).fetchnumpy()
    names = list(rows)
    return sparse.csr_matrix((np.asarray(rows[names[2]], np.float64), (rows[names[0]], rows[names[1]])),
                             shape=(n_users, n_columns))


@dataclass(frozen=True)
class _Batch:
    """What every chunk of a batch is computed from: the stored state, the (users x sources) event weights, the
    source vectors, the sources' (and the users' habit) affinity features, and the affinity keys."""

    old: _Old
    weights: sparse.csr_matrix
    sources: np.ndarray
    features: sparse.csr_matrix
    habits: sparse.csr_matrix
    keys: Keys


@dataclass(frozen=True)
class _Chunk:
    """The merged rows of users ``a <= uidx < b`` with their population-relative columns (``part``, in DuckDB's
    order: the matrices follow it), their rows of the batch's source weights and their stored affinities; their
    stored vectors are read by :meth:`vectors`."""

    a: int
    b: int
    part: pa.Table
    weights: sparse.csr_matrix  # (users of part, sources), read by both halves of the work
    old_affinity: pa.Table  # (uidx, key_ids, weights)

    @classmethod
    def read(cls, store: Store, a: int, b: int, batch: _Batch) -> _Chunk:
        part = store.con.sql(CHUNK_SQL, params=[a, b]).to_arrow_table()
        return cls(a, b, part, batch.weights[part.column("uidx").to_numpy()], batch.old.affinities(store, a, b))

    def stored_affinities(self, uidx: np.ndarray, n_keys: int) -> sparse.csr_matrix:
        """The stored affinities of users ``uidx`` (rows in that order), empty for users without any."""
        stored = list_matrix(self.old_affinity.column("key_ids"), self.old_affinity.column("weights"), n_keys)
        padded = sparse.csr_matrix((stored.data, stored.indices, np.r_[stored.indptr, stored.nnz]),
                                   shape=(stored.shape[0] + 1, n_keys))  # the empty row, without a copy
        at = np.full(self.b - self.a, stored.shape[0], dtype=np.int64)
        at[self.old_affinity.column("uidx").to_numpy() - self.a] = np.arange(stored.shape[0])
        return padded[at[uidx - self.a]]

    def compute(self, batch: _Batch, con: Any) -> tuple[pa.Table, pa.Table]:
        """The new profiles and affinities, reading the stored vectors on ``con`` first (on an update, this runs
        on a worker thread with a connection of its own)."""
        return self.assemble(self.vectors(batch, con), self.ranked(batch))

    def vectors(self, batch: _Batch, con: Any) -> tuple[pa.Array, pa.Array]:
        """The interest vectors' codes and norms, from the stored ones (read on ``con``) and the batch's weights."""
        old_vectors = batch.old.vectors(con, self.a, self.b, batch.sources.shape[1])
        uidx = self.part.column("uidx").to_numpy()
        at = np.empty(self.b - self.a, dtype=np.int64)
        at[uidx - self.a] = np.arange(len(uidx))
        stored = [(at[rows - self.a], codes, norm) for rows, codes, norm in old_vectors]
        return interest_vectors(self.weights, batch.sources, stored, self.part.column("consent").to_numpy())

    def ranked(self, batch: _Batch) -> dict[str, pa.Array]:
        """The ranked affinities and the readable columns derived from them (:func:`ranked_affinities`)."""
        uidx = self.part.column("uidx").to_numpy()
        stored = self.stored_affinities(uidx, len(batch.keys.kind))
        total = self.weights @ batch.features + batch.habits[uidx] + stored
        return ranked_affinities(total, self.part.column("consent").to_numpy(), batch.keys)

    def assemble(self, vectors: tuple[pa.Array, pa.Array], ranked: dict[str, pa.Array] | Future[dict[str, pa.Array]],
                 ) -> tuple[pa.Table, pa.Table]:
        """The rows to insert into ``profiles`` and ``profile_affinity``."""
        ranked = dict(ranked.result() if isinstance(ranked, Future) else ranked)
        affinity = pa.table({"user_id": self.part.column("user_id"), "key_ids": ranked.pop("key_ids"),
                             "weights": ranked.pop("weights")})
        rows = self.part.drop_columns(["uidx", "consent", "p_row", "a_row"])
        rows = rows.append_column("interest_vector", vectors[0]).append_column("interest_norm", vectors[1])
        for name, column in ranked.items():
            rows = rows.append_column(name, column)
        return rows, affinity


def _write_chunks(store: Store, n_users: int, batch: _Batch, moves: Moves, update: bool) -> None:
    """Compute and insert the new profiles of every chunk of users.

    An update reads chunk k's stored vectors and computes it on a worker thread, with a DuckDB connection of its
    own, while the main connection reads chunk k + 1's other rows and inserts chunk k - 1 on one thread (see
    :func:`_settings`). The reader sees the committed rows only, which are the stored ones: this transaction
    deletes them after the writes. Reading the vectors (~0.5 CPU-s a chunk) on the main connection left the
    worker waiting for it. The first chunk, with nothing yet to insert, is split: the main thread reads its stored
    vectors (on the reader's connection) and codes them while the worker ranks its affinities (ready ~0.5 s
    sooner). Each inserted chunk is written back to disk behind the next one (:func:`_write_back`). While the
    main thread waits for the worker, it runs the pieces of ``moves`` (:mod:`~adpilot.understand.compaction`).
    A build, with no stored vectors to read, goes chunk by chunk with DuckDB's threads:
    the overlap and the one-thread inserts took its peak RSS from 4.0 to 4.6 GiB.
    """
    bounds = np.linspace(0, n_users, max(1, n_users // CHUNK_USERS) + 1).astype(int)
    chunks = zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
    if not update:
        for a, b in chunks:
            _write_chunk(store, *_Chunk.read(store, a, b, batch).compute(batch, store.con), one_thread=False)
        return
    with ThreadPoolExecutor(1) as pool, ThreadPoolExecutor(1) as flusher, closing(store.con.cursor()) as reader:
        computing = None
        for a, b in chunks:
            chunk = _Chunk.read(store, a, b, batch)
            if computing is None:  # nothing to insert yet: the main thread takes the first chunk's vectors
                ranked = pool.submit(chunk.ranked, batch)
                computing = pool.submit(chunk.assemble, chunk.vectors(batch, reader), ranked)  # after the ranking
                continue
            done = _after_moves(store, computing, moves)
            computing = pool.submit(chunk.compute, batch, reader)
            _write_chunk(store, *done, one_thread=True)
            flusher.submit(_write_back, store.path)
        if computing:
            _write_chunk(store, *_after_moves(store, computing, moves), one_thread=True)


def _after_moves(store: Store, computing: Future[tuple[pa.Table, pa.Table]], moves: Moves,
                 ) -> tuple[pa.Table, pa.Table]:
    """The worker's result, once it is ready; pieces of ``moves`` run on the main connection meanwhile (one
    thread, as the inserts: see :func:`_settings`)."""
    with _settings(store.con, {"threads": "1"}):
        while not computing.done() and moves.step(store.con):
            pass
    return computing.result()


def _write_back(path: str) -> None:
    """Write the store file's dirty pages to disk now (``fsync``), on a thread of its own.

    An update's inserts go to the database file as they are made (see :func:`_writing`); left to the kernel, the
    new row groups (~600-850 MB an update) piled up as dirty pages while the next chunks allocated fresh memory, and
    the commit flushed them. Flushed after each chunk, behind the next chunk's work. Same runs, before vs after
    (``bench_understand_profiles.py --skip-build --updates 2``): e5 mean update wall 11.4 -> 10.9 s and 10.3 -> 10.2
    s (commit 0.64-0.73 -> 0.45-0.54 s), USE 20.6 / 19.1 -> 15.2 / 15.9 s (system time 15.5 / 12.7 -> 8.0 / 9.7 s);
    with the page cache dropped first, no gain either way. Only a head start: the commit still makes its own writes
    durable.
    """
    if path == ":memory:":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_chunk(store: Store, rows: pa.Table, affinity: pa.Table, one_thread: bool) -> None:
    """Insert one chunk's new profiles and affinities, on one DuckDB thread if ``one_thread``."""
    con = store.con
    con.register("_part", rows)
    try:
        with _settings(con, {"threads": "1"} if one_thread else {}):  # see _settings
            con.execute("INSERT INTO profiles BY NAME SELECT * FROM _part")
            con.execute("INSERT INTO profile_affinity SELECT * FROM affinity")
    finally:
        con.unregister("_part")


@contextmanager
def _writing(store: Store, atomic: bool) -> Iterator[None]:
    """One transaction (if ``atomic``) written uncompressed and never vacuumed.

    Compressing the rows cost half the write time when vectors were floats. Replacing a touched user's row leaves
    a deleted row behind; DuckDB's vacuum would rewrite every row group holding one at a checkpoint — about the
    whole table, as touched users are spread over it (2.7-4 s for a million profiles, every third update of 40%
    of the users). An update moves the oldest stretch of each table instead (:mod:`adpilot.understand.compaction`)
    and the checkpoint drops the emptied row groups. A checkpoint by another writer with DuckDB's default settings
    may still vacuum: the same cost, paid there.

    In one transaction, each full row group of new rows goes to the database file as soon as it is inserted
    (DuckDB's optimistic write, ``write_buffer_row_group_count = 1``). With the default of 5 buffered row groups,
    the 3.4 row groups of a 413k-user update stayed in memory, spilled 1 GB to the temp file under a 1 GB memory
    limit and were read back by the commit (commit 5.9 s wall / 2.8 CPU-s vs 1.2 / 0.5). A build commits chunk
    by chunk and keeps DuckDB's default.
    """
    con = store.con
    values = {"force_compression": "'uncompressed'", "max_vacuum_tasks": "0"}
    if atomic:
        values["write_buffer_row_group_count"] = "1"
    with _settings(con, values):
        if atomic:
            con.begin()
        try:
            yield
        except BaseException:
            if atomic:
                con.rollback()
            raise
        with _step("commit"):
            if atomic:
                con.commit()
            con.execute("CHECKPOINT")  # now, while the settings hold (a commit may have checkpointed already)


@contextmanager
def _settings(con: Any, values: dict[str, str]) -> Iterator[None]:
    """DuckDB settings (SQL literals) for the block, restored after it.

    The profile inserts run on one thread: with two, DuckDB's parallel insert cost 3x the CPU. One thread leaves
    the rows in memory until the commit writes them (2.5-3 CPU-s for 413k rows), and still saved 2-3.5 CPU-s
    of a 1M-event update, same run (write + commit 17.1 vs 13.6 CPU-s at a 3 GB memory limit, 15.8 vs 13.7 at
    1 GB).
    """
    previous = {}
    for name in values:
        value = fetch_row(con, f"SELECT current_setting('{name}')")[0]  # type: ignore[index]
        previous[name] = f"'{value}'" if isinstance(value, str) else str(value)
    for name, value in values.items():
        con.execute(f"SET {name} = {value}")
    try:
        yield
    finally:
        for name, value in previous.items():
            con.execute(f"RESET {name}" if value == "''" else f"SET {name} = {value}")
