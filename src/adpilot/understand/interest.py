"""Interest vectors: the time-decayed, event-weighted sum of the vectors of what a user looked at, bought,
searched for and wrote, normalised to unit length.

Sums, not means, are the sufficient statistic: the store keeps the unit vector and the norm of the sum, so an
update adds the new events' weighted vectors to ``vector * norm`` and re-normalises — no rebuild. The work is
one sparse (users x sources) matrix times the dense (sources x d) matrix of item and text vectors, by chunks of
users so memory stays bounded at ``chunk x d`` floats.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from adpilot.store import Store
from adpilot.understand.base import TextEncoder
from adpilot.understand.cache import encode_cached
from adpilot.understand.items import load_product_vectors
from adpilot.understand.vectors import from_list_column, to_list_array


def interest_sums(store: Store, encoder: TextEncoder, chunk: int = 100_000) -> None:
    """Write temp table ``_vec`` (user_id, interest_vector, interest_norm): merged sums of every user in ``_delta``.

    Chunks go into DuckDB as they are made, so Python holds one chunk of vectors at a time and DuckDB may spill
    the rest (a million users of 512 floats is 2 GiB).

    Reads the batch ``_ev`` (user_id, item_id, query, text, type, w, consent) prepared by the profile builder;
    events of users without consent add nothing, so those users get no vector. Old sums come from ``profiles``.
    """
    con = store.con
    ids, items = load_product_vectors(store, encoder.name)
    pv = pa.table({"product_id": pa.array(ids, pa.string()),  # noqa: F841
                   "sidx": pa.array(np.arange(len(ids), dtype=np.int64))})
    texts = con.sql(
        "SELECT DISTINCT CASE WHEN type = 'search' THEN 'query' ELSE 'passage' END AS kind, "
        "CASE WHEN type = 'search' THEN query ELSE text END AS body FROM _ev "
        "WHERE consent AND ((type = 'search' AND query <> '') OR (type = 'review' AND text <> '')) ORDER BY kind, body"
    ).to_arrow_table()
    kinds, bodies = texts.column("kind").to_pylist(), texts.column("body").to_pylist()
    matrices = [items if len(ids) else np.empty((0, encoder.dim), np.float32)]
    for kind in ("passage", "query"):
        picked = [b for k, b in zip(kinds, bodies, strict=True) if k == kind]
        matrices.append(encode_cached(store, encoder, picked, kind=kind))  # type: ignore[arg-type]
    sources = np.vstack(matrices)
    tx = pa.table({"kind": texts.column("kind"), "body": texts.column("body"),  # noqa: F841
                   "sidx": pa.array(len(ids) + np.arange(texts.num_rows, dtype=np.int64))})
    users = con.sql("SELECT user_id FROM _delta ORDER BY user_id").to_arrow_table().column(0)
    uidx = pa.table({"user_id": users, "uidx": pa.array(np.arange(len(users), dtype=np.int64))})  # noqa: F841
    pairs = con.sql("""
        WITH src AS (
            SELECT e.user_id, pv.sidx, e.w FROM _ev e JOIN pv ON pv.product_id = e.item_id WHERE e.consent
            UNION ALL
            SELECT e.user_id, tx.sidx, e.w FROM _ev e JOIN tx
              ON tx.body = CASE WHEN e.type = 'search' THEN e.query ELSE e.text END
             AND tx.kind = CASE WHEN e.type = 'search' THEN 'query' ELSE 'passage' END
             AND e.type IN ('search', 'review') AND e.consent)
        SELECT u.uidx, s.sidx, sum(s.w)::FLOAT AS w FROM src s JOIN uidx u USING (user_id)
        WHERE s.w > 0 GROUP BY ALL""").fetchnumpy()
    weights = sparse.csr_matrix((pairs["w"], (pairs["uidx"], pairs["sidx"])), shape=(len(users), len(sources)),
                                dtype=np.float32)
    del pairs
    con.register("_part", _empty_result())
    con.execute("CREATE OR REPLACE TEMP TABLE _vec AS SELECT * FROM _part")
    for a in range(0, len(users), chunk):
        con.register("_part", _merge_chunk(store, users.slice(a, chunk), weights[a : a + chunk] @ sources))
        con.execute("INSERT INTO _vec SELECT * FROM _part")
    con.unregister("_part")


def _merge_chunk(store: Store, users: pa.ChunkedArray, added: np.ndarray) -> pa.Table:
    """Add ``added`` (n, d) to the stored sums of ``users`` and re-normalise; zero sums become NULL."""
    wanted = pa.table({"user_id": users, "row": pa.array(np.arange(len(users), dtype=np.int64))})  # noqa: F841
    old = store.con.sql(
        "SELECT w.row, p.interest_vector, p.interest_norm FROM wanted w JOIN profiles p USING (user_id) "
        "WHERE p.interest_vector IS NOT NULL").to_arrow_table()
    total = np.asarray(added, dtype=np.float32)
    if old.num_rows:
        rows = old.column("row").to_numpy()
        vectors = from_list_column(old.column("interest_vector"), total.shape[1])
        total[rows] += vectors * old.column("interest_norm").to_numpy()[:, None].astype(np.float32)
    norms = np.linalg.norm(total, axis=1)
    has = norms > 0
    vectors = to_list_array(total / np.where(has, norms, 1)[:, None])
    vectors = pc.if_else(pa.array(has), vectors, pa.scalar(None, vectors.type))
    return pa.table({"user_id": users, "interest_vector": vectors,
                     "interest_norm": pa.array(norms.astype(np.float64), mask=~has)})


def _empty_result() -> pa.Table:
    return pa.table({"user_id": pa.array([], pa.string()), "interest_vector": pa.array([], pa.list_(pa.float32())),
                     "interest_norm": pa.array([], pa.float64())})


def load_interest_vectors(store: Store, users: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(user ids, float32 unit rows) of every profile with an interest vector, or of ``users`` among them."""
    sql = "SELECT user_id, interest_vector FROM profiles WHERE interest_vector IS NOT NULL"
    if users is not None:
        wanted = pa.table({"user_id": pa.array(users, pa.string())})  # noqa: F841
        sql += " AND user_id IN (SELECT user_id FROM wanted)"
    table = store.con.sql(sql + " ORDER BY user_id").to_arrow_table()
    if table.num_rows == 0:
        return [], np.empty((0, 0), dtype=np.float32)
    dim = len(table.column("interest_vector")[0])
    return table.column("user_id").to_pylist(), from_list_column(table.column("interest_vector"), dim)
