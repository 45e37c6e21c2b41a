"""Quality of profiles on data whose truth is known or held out.

- :func:`interest_recovery`: on the synthetic world, how well each user's interest vector ranks the leaf
  categories the world drew their true interests over (Spearman per user, Recall@K of the true top-K leaves),
  against global popularity and against the user's own per-leaf event counts.
- :func:`next_item_retrieval`: each user's last item event is held out; Recall@K of ANN on the interest vector
  (popularity for users without a vector), of the multi-interest profile score
  (:func:`~adpilot.understand.retrieval.profile_item_scores`), vs popularity vs item-based CF, overall and on
  cold items (few training interactions).

Both take their inputs as arguments (store, truth folder, held-out frame) so they run on any world or log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import sparse
from scipy.stats import rankdata

from adpilot.errors import InputFileError, check_scalar
from adpilot.store import Store
from adpilot.understand.interest import load_interest_vectors
from adpilot.understand.items import load_product_vectors
from adpilot.understand.retrieval import profile_item_scores, recent_rows

ITEM_EVENTS = ("page_view", "click", "add_to_cart", "purchase")


def load_world_store(world_dir: str | Path, store: Store) -> None:
    """Copy a world's events, products and users (Parquet) into ``store`` as they are (ids not pseudonymised)."""
    world_dir = Path(world_dir)
    for name in ("events", "products", "users"):
        path = world_dir / f"{name}.parquet"
        if not path.is_file():
            raise InputFileError(f"{path} is missing: `world_dir` must be a folder written by `adpilot world`")
        frame = pq.read_table(path)  # noqa: F841
        columns = ", ".join(frame.column_names)
        values = columns + (", md5_number(event_id)" if name == "events" else "")
        key = ", event_key" if name == "events" else ""
        store.con.execute(f"INSERT INTO {name} ({columns}{key}) SELECT {values} FROM frame")


def hold_out_last_items(store: Store) -> pd.DataFrame:
    """Remove each user's last item event (and anything after it) from ``events``; return (user_id, item_id).

    Only users with at least two item events take part, so every test user has some history.
    """
    types = ", ".join(f"'{t}'" for t in ITEM_EVENTS)
    held = store.con.sql(f"""
        SELECT user_id, arg_max(item_id, ts) AS item_id, max(ts) AS ts FROM events
        WHERE type IN ({types}) AND item_id IS NOT NULL AND NOT coalesce(bot_flag, FALSE)
        GROUP BY user_id HAVING count(*) >= 2""").df()
    store.con.register("_held", held)
    store.con.execute("DELETE FROM events e USING _held h WHERE e.user_id = h.user_id AND e.ts >= h.ts")
    store.con.unregister("_held")
    return held[["user_id", "item_id"]]


def interest_recovery(store: Store, truth_dir: str | Path, encoder_name: str, k: int = 3) -> dict[str, Any]:
    """Spearman and Recall@``k`` of per-user leaf rankings against the world's true interests."""
    check_scalar(k, "k", ge=1)
    truth_dir = Path(truth_dir)
    users_truth = pq.read_table(truth_dir / "users.parquet").to_pandas()
    leaf_of = pq.read_table(truth_dir / "products.parquet", columns=["product_id", "leaf"]).to_pandas()
    ids, items = load_product_vectors(store, encoder_name)
    leaves = leaf_of.set_index("product_id").loc[ids, "leaf"].to_numpy()
    n_leaves = len(users_truth["interest"].iloc[0])
    centroids = np.zeros((n_leaves, items.shape[1]), np.float32)
    np.add.at(centroids, leaves, items)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-9)
    users, vectors = load_interest_vectors(store)
    truth = np.stack(users_truth.set_index("user_id").loc[users, "interest"].to_numpy())
    store.con.register("_leaf", leaf_of)
    counts_frame = store.con.sql(
        "SELECT e.user_id, l.leaf, count(*) AS n FROM events e JOIN _leaf l ON l.product_id = e.item_id "
        "GROUP BY ALL").df()
    store.con.unregister("_leaf")
    row = pd.Series(np.arange(len(users)), index=users)
    counts_frame = counts_frame[counts_frame["user_id"].isin(row.index)]
    counts = np.zeros((len(users), n_leaves))
    counts[row[counts_frame["user_id"]].to_numpy(), counts_frame["leaf"].to_numpy()] = counts_frame["n"]
    popularity = np.broadcast_to(counts.sum(0), counts.shape)
    methods = {"interest_vector": vectors @ centroids.T, "popularity": popularity,
               "history_counts": counts + 1e-6 * popularity}
    return {"users": len(users), "k": k,
            **{name: {"spearman": _mean_spearman(score, truth), f"recall@{k}": _recall_top(score, truth, k)}
               for name, score in methods.items()}}


def _mean_spearman(score: np.ndarray, truth: np.ndarray) -> float:
    a, b = rankdata(score, axis=1), rankdata(truth, axis=1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(np.divide((a * b).sum(1), denominator, out=np.zeros(len(a)), where=denominator > 0)))


def _recall_top(score: np.ndarray, truth: np.ndarray, k: int) -> float:
    top_score = np.argsort(-score, axis=1, kind="stable")[:, :k]
    top_truth = np.argsort(-truth, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_score, top_truth, strict=True)]))


def next_item_retrieval(store: Store, held: pd.DataFrame, encoder_name: str, k: int = 50,
                        cold_max: int = 5, recent: int = 20) -> dict[str, Any]:
    """Recall@``k`` of the held-out items; ``cold`` = items with at most ``cold_max`` training interactions."""
    check_scalar(k, "k", ge=1)
    ids, items = load_product_vectors(store, encoder_name)
    position = pd.Series(np.arange(len(ids)), index=ids)
    held = held[held["item_id"].isin(position.index)].reset_index(drop=True)
    types = ", ".join(f"'{t}'" for t in ITEM_EVENTS)
    train = store.con.sql(f"SELECT user_id, item_id, max(ts) AS ts FROM events WHERE type IN ({types}) "
                          "AND item_id IS NOT NULL GROUP BY ALL").df()
    train = train[train["item_id"].isin(position.index)]
    item_counts = np.bincount(position[train["item_id"]].to_numpy(), minlength=len(ids))
    popular = np.argsort(-item_counts, kind="stable")[:k]
    target = position[held["item_id"]].to_numpy()
    cold = item_counts[target] <= cold_max

    users, vectors = load_interest_vectors(store)
    vector_row = pd.Series(np.arange(len(users)), index=users)
    has_vector = held["user_id"].isin(vector_row.index).to_numpy()
    hits_interest = np.isin(target, popular)  # popularity fallback for users without a vector
    rows = vector_row[held.loc[has_vector, "user_id"]].to_numpy()
    for start in range(0, len(rows), 4096):
        scores = vectors[rows[start : start + 4096]] @ items.T
        top = np.argpartition(-scores, min(k, len(ids) - 1), axis=1)[:, :k]
        index = np.flatnonzero(has_vector)[start : start + 4096]
        hits_interest[index] = (top == target[index, None]).any(1)

    hits_profile = np.isin(target, popular)
    hits_profile[has_vector] = _profile_hits(store, held.loc[has_vector, "user_id"].tolist(), vectors[rows], items,
                                             position, target[has_vector], k, recent)
    hits_cf = _item_cf_hits(train, position, held, target, k, recent)
    hits_pop = np.isin(target, popular)
    out: dict[str, Any] = {"test_users": len(held), "cold_test_users": int(cold.sum()), "k": k,
                           "cold_max_train_interactions": cold_max}
    for name, hits in (("interest_ann", hits_interest), ("lm_profile", hits_profile), ("popularity", hits_pop),
                       ("item_cf", hits_cf)):
        out[name] = {"recall": float(hits.mean()) if len(hits) else 0.0,
                     "recall_cold": float(hits[cold].mean()) if cold.any() else None}
    return out


def _profile_hits(store: Store, users: list[str], interest: np.ndarray, items: np.ndarray, position: pd.Series,
                  target: np.ndarray, k: int, recent: int) -> np.ndarray:
    """Hits of the multi-interest profile score (recent items' vectors + interest vector), by chunks of users."""
    store.con.register("_wanted", pd.DataFrame({"user_id": users, "row": np.arange(len(users))}))
    sequences = store.con.sql("SELECT w.row, p.recent_items FROM _wanted w JOIN profiles p USING (user_id) "
                              "ORDER BY w.row").df()
    store.con.unregister("_wanted")
    known = [[] for _ in users]
    for row, sequence in zip(sequences["row"], sequences["recent_items"], strict=True):
        known[row] = list(sequence)
    rows = recent_rows(known, position.to_dict(), recent)
    hits = np.zeros(len(users), bool)
    chunk = max(1, 20_000_000 // (recent * len(items)))  # bounds the (chunk, recent, items) similarity block
    for start in range(0, len(users), chunk):
        part = slice(start, start + chunk)
        scores = profile_item_scores(interest[part], rows[part], items)
        top = np.argpartition(-scores, min(k, len(items) - 1), axis=1)[:, :k]
        hits[part] = (top == target[part, None]).any(1)
    return hits


def _item_cf_hits(train: pd.DataFrame, position: pd.Series, held: pd.DataFrame, target: np.ndarray, k: int,
                  recent: int) -> np.ndarray:
    """Item-based CF: cosine of item co-occurrence over users; a user's score sums it over recent items."""
    user_codes, user_index = pd.factorize(train["user_id"])
    x = sparse.csr_matrix((np.ones(len(train), np.float32), (user_codes, position[train["item_id"]].to_numpy())),
                          shape=(len(user_index), len(position)))
    co = (x.T @ x).tocsr()
    norms = np.sqrt(np.maximum(co.diagonal(), 1))
    similarity = sparse.diags(1 / norms) @ co @ sparse.diags(1 / norms)
    train = train.sort_values("ts")
    last = train.groupby("user_id").tail(recent)
    codes = pd.Series(np.arange(len(held)), index=held["user_id"])
    last = last[last["user_id"].isin(codes.index)]
    profile = sparse.csr_matrix((np.ones(len(last), np.float32),
                                 (codes[last["user_id"]].to_numpy(), position[last["item_id"]].to_numpy())),
                                shape=(len(held), len(position)))
    hits = np.zeros(len(held), bool)
    for start in range(0, len(held), 4096):
        scores = (profile[start : start + 4096] @ similarity).toarray()
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        hits[start : start + 4096] = (top == target[start : start + 4096, None]).any(1)
    return hits


def bot_flag_quality(flags: pd.DataFrame, truth_dir: str | Path) -> dict[str, Any]:
    """Precision and recall of user flags (``source``, ``flagged`` from :func:`flag_users`) against the world's
    true bots (``truth/users.parquet`` ``is_bot``)."""
    truth = pq.read_table(Path(truth_dir) / "users.parquet", columns=["user_id", "is_bot"]).to_pandas()
    joined = flags.merge(truth, left_on="source", right_on="user_id", how="inner")
    tp = int((joined["flagged"] & joined["is_bot"]).sum())
    flagged, bots = int(joined["flagged"].sum()), int(joined["is_bot"].sum())
    return {"users": len(joined), "bots": bots, "flagged": flagged, "true_positives": tp,
            "precision": tp / flagged if flagged else None, "recall": tp / bots if bots else None}
