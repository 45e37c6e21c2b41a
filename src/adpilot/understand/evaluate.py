"""Quality of profiles on data whose truth is known or held out.

- :func:`interest_recovery`: on the synthetic world, how well each user's interest vector ranks the leaf
  categories the world drew their true interests over (Spearman per user, Recall@K of the true top-K leaves),
  against global popularity and against the user's own per-leaf event counts.
- :func:`next_item_retrieval`: held-out next items (:func:`hold_out_after`, a split in time, or
  :func:`hold_out_last_items`, each user's last item); Recall@K of ANN on the interest vector, of the pure-LM
  profile score (alone and with the user's own category affinity), of the LM + item-CF hybrid
  (:func:`~adpilot.understand.retrieval.profile_item_scores`) and, when given, of the learned two-tower
  :class:`~adpilot.understand.adapter.LMAdapter` (alone, with item-CF, and with item-CF plus a few slots
  reserved for cold items), vs popularity vs item-based CF, overall and on cold items (no training interaction at
  all), with bootstrap intervals over users.

Both take their inputs as arguments (store, truth folder, held-out frame) so they run on any world or log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.stats import rankdata

from adpilot.errors import InputFileError, UserError, check_scalar
from adpilot.measure.intervals import bootstrap_mean
from adpilot.store import Store
from adpilot.understand.interest import load_interest_vectors
from adpilot.understand.items import load_product_vectors
from adpilot.understand.retrieval import (
    ADAPTER_CF_LM_WEIGHT,
    COLD_SLOTS,
    ITEM_EVENTS,
    LMItemCF,
    category_shares,
    profile_item_scores,
    recent_rows,
)
from adpilot.understand.vectors import fetch_row

if TYPE_CHECKING:
    from adpilot.understand.adapter import LMAdapter


def load_world_store(world_dir: str | Path, store: Store) -> None:
    """Copy a world's events, products and users (Parquet) into ``store`` as they are (ids not pseudonymised)."""
    world_dir = Path(world_dir)
    for name in ("events", "products", "users"):
        path = world_dir / f"{name}.parquet"
        if not path.is_file():
            raise InputFileError(f"{path} is missing: `world_dir` must be a folder written by `adpilot world`")
        frame = pq.read_table(path)  # noqa: F841
        store.con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame")


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


def hold_out_after(store: Store, test_days: float) -> pd.DataFrame:
    """Remove every event of the last ``test_days`` (before the last item event); return each user's first item
    in that period, (user_id, item_id), for users with at least one item event before it.

    A split in time, not per user: nothing a model learns from happened after the cutoff, so items launched late
    have no training interactions at all (true cold start), which a per-user last-event split nearly never gives
    (other users' later events stay in its training part).
    """
    check_scalar(test_days, "test_days", gt=0)
    types = ", ".join(f"'{t}'" for t in ITEM_EVENTS)
    item_events = f"type IN ({types}) AND item_id IS NOT NULL AND NOT coalesce(bot_flag, FALSE)"
    row = fetch_row(store.con, f"SELECT max(ts) - to_microseconds(CAST(? * 86400e6 AS BIGINT)) FROM events "
                               f"WHERE {item_events}", [test_days])
    cutoff = row[0] if row else None
    if cutoff is None:
        raise UserError("no item events to split: the store has no page views, clicks, carts or purchases")
    held = store.con.sql(f"""
        SELECT user_id, arg_min(item_id, ts) AS item_id FROM events WHERE {item_events} AND ts >= $cutoff
        GROUP BY user_id HAVING user_id IN (SELECT user_id FROM events WHERE {item_events} AND ts < $cutoff)
        ORDER BY user_id""", params={"cutoff": cutoff}).df()
    store.con.execute("DELETE FROM events WHERE ts >= ?", [cutoff])
    return held


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


def next_item_retrieval(store: Store, held: pd.DataFrame, encoder_name: str, k: int = 50, recent: int = 20,
                        n_boot: int = 1000, seed: int = 0, adapter: LMAdapter | None = None,
                        adapter_cf_weight: float = 1 / ADAPTER_CF_LM_WEIGHT,
                        cold_slots: tuple[int, ...] = (COLD_SLOTS,)) -> dict[str, Any]:
    """Recall@``k`` of the held-out items per method, overall and on cold items, with 95% bootstrap intervals.

    Cold = the held-out item appears in no event left in the store (no training interaction of any kind). Ties
    count as broken at random (a hit is worth ``(k - better) / tied``), so a method cannot reach an item it gives
    the same score as many others — item-CF's all-zero cold columns included. Only users with an interest vector
    take part (the others opted out of personalisation, which every method here is), so every method sees the
    same users and the same history. Also reported: paired differences of the LM methods against item-CF and
    popularity, bootstrapped over the same users.

    ``adapter``, an unfitted :class:`~adpilot.understand.adapter.LMAdapter`, is fitted here on the store's events
    (only what is left before the cut) and scored from the profiles' last ``adapter.history`` recent items
    (``lm_adapter``), and mixed with item-CF, which gets ``adapter_cf_weight`` of the adapter's standardised
    weight (``lm_adapter_cf``); its fit time is reported. For each ``m`` of ``cold_slots`` that mix keeps the
    last ``m`` places of the top ``k`` for the cold items the adapter scores best (``lm_adapter_cf_cold<m>``; the
    default is the recommended setting of :mod:`~adpilot.understand.retrieval`): the trade between warm and cold
    recall.
    """
    check_scalar(k, "k", ge=1)
    ids, items = load_product_vectors(store, encoder_name)
    position = pd.Series(np.arange(len(ids)), index=ids)
    users, vectors = load_interest_vectors(store)
    vector_row = pd.Series(np.arange(len(users)), index=users)
    known = held["item_id"].isin(position.index) & held["user_id"].isin(vector_row.index)
    without_vector = int((held["item_id"].isin(position.index) & ~known).sum())
    held = held[known].reset_index(drop=True)
    interest = vectors[vector_row[held["user_id"]].to_numpy()]
    types = ", ".join(f"'{t}'" for t in ITEM_EVENTS)
    train = store.con.sql(f"SELECT DISTINCT user_id, item_id FROM events WHERE type IN ({types}) "
                          "AND item_id IS NOT NULL").df()
    train = train[train["item_id"].isin(position.index)]
    seen = store.con.sql("SELECT DISTINCT item_id FROM events WHERE item_id IS NOT NULL").df()["item_id"]
    target = position[held["item_id"]].to_numpy()
    cold = ~held["item_id"].isin(seen).to_numpy()
    popularity = np.bincount(position[train["item_id"]].to_numpy(), minlength=len(ids)).astype(np.float64)
    cf = LMItemCF().fit(train["user_id"].to_numpy(), position[train["item_id"]].to_numpy(), items)
    recent_items, at = _recent_items(store, held["user_id"].tolist()), position.to_dict()
    rows = recent_rows(recent_items, at, recent)
    shares, category_column = category_shares(store, held["user_id"].tolist(), ids)
    fitted: dict[str, Any] = {}
    if adapter is not None:
        check_scalar(adapter_cf_weight, "adapter_cf_weight", gt=0)
        from adpilot.understand.adapter import store_interactions  # torch only when asked for

        wall, cpu = time.perf_counter(), time.process_time()
        adapter.fit(*store_interactions(store, ids), items)
        fitted = {"adapter_fit_seconds": time.perf_counter() - wall, "adapter_fit_cpu_seconds": time.process_time() - cpu,
                  "adapter_loss": adapter.loss_}
        long_rows = recent_rows(recent_items, at, adapter.history)

    names: tuple[str, ...] = ("popularity", "item_cf", "interest_ann", "lm_profile", "lm_profile_affinity", "lm_hybrid")
    if adapter is not None:
        names += ("lm_adapter", "lm_adapter_cf", *(f"lm_adapter_cf_cold{m}" for m in cold_slots))
    hits = np.zeros((len(held), len(names)))
    chunk = max(1, 20_000_000 // (recent * len(items)))  # bounds the (chunk, recent, items) similarity block
    for start in range(0, len(held), chunk):
        part = slice(start, start + chunk)
        n = len(target[part])
        scores = [np.broadcast_to(popularity, (n, len(ids))), np.where(cf.warm_, cf.scores(rows[part]), 0.0),
                  interest[part] @ items.T, profile_item_scores(interest[part], rows[part], items),
                  profile_item_scores(interest[part], rows[part], items, affinity=shares[part][:, category_column]),
                  profile_item_scores(interest[part], rows[part], items, cf=cf)]
        if adapter is not None:
            scores += [profile_item_scores(interest[part], long_rows[part], items, adapter=adapter)]
            scores += [profile_item_scores(interest[part], long_rows[part], items, adapter=adapter, cf=cf,
                                           lm_weight=1 / adapter_cf_weight, cold_slots=m, k=k)
                       for m in (0, *cold_slots)]
        for j, score in enumerate(scores):
            hits[part, j] = _tie_aware_hits(score, target[part], k)
    out: dict[str, Any] = {"test_users": len(held), "cold_test_users": int(cold.sum()),
                           "test_users_without_vector_left_out": without_vector, "k": k, "recent": recent,
                           "catalogue": len(ids), "items_without_interactions": int((~cf.warm_).sum()), **fitted}
    for j, name in enumerate(names):
        out[name] = {"recall": _interval(hits[:, j], seed, n_boot), "recall_cold": _interval(hits[cold, j], seed, n_boot)}
    for lm_name in names[3:]:
        for peer in ("item_cf", "popularity"):
            diff = hits[:, names.index(lm_name)] - hits[:, names.index(peer)]
            out[f"{lm_name}_minus_{peer}"] = {"recall": _interval(diff, seed, n_boot),
                                              "recall_cold": _interval(diff[cold], seed, n_boot)}
    return out


def _recent_items(store: Store, users: list[str]) -> list[list[str]]:
    """The profiles' recent item sequences (oldest first) of ``users``, [] for users without a profile."""
    store.con.register("_wanted", pd.DataFrame({"user_id": users, "row": np.arange(len(users))}))
    sequences = store.con.sql("SELECT w.row, p.recent_items FROM _wanted w JOIN profiles p USING (user_id) "
                              "WHERE p.recent_items IS NOT NULL").df()
    store.con.unregister("_wanted")
    known: list[list[str]] = [[] for _ in users]
    for row, sequence in zip(sequences["row"], sequences["recent_items"], strict=True):
        known[row] = list(sequence)
    return known


def _tie_aware_hits(scores: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Probability that ``target`` is in the top ``k`` of each row when ties are broken uniformly at random.

    >>> _tie_aware_hits(np.array([[3.0, 1, 1, 1], [0, 0, 0, 0]]), np.array([2, 0]), k=2).tolist()
    [0.3333333333333333, 0.5]
    """
    mine = scores[np.arange(len(target)), target][:, None]
    better, tied = (scores > mine).sum(1), (scores == mine).sum(1)
    return np.clip((k - better) / tied, 0.0, 1.0)


def _interval(values: np.ndarray, seed: int, n_boot: int) -> dict[str, float] | None:
    """Mean and 95% percentile bootstrap interval over users (None without users)."""
    if len(values) == 0:
        return None
    interval = bootstrap_mean(values, n_bootstrap=n_boot, random_state=seed)
    return {"mean": interval.estimate, "low": interval.lower, "high": interval.upper, "n": len(values)}


def bot_flag_quality(flags: pd.DataFrame, truth_dir: str | Path) -> dict[str, Any]:
    """Precision and recall of user flags (``source``, ``flagged`` from :func:`flag_users`) against the world's
    true bots (``truth/users.parquet`` ``is_bot``)."""
    truth = pq.read_table(Path(truth_dir) / "users.parquet", columns=["user_id", "is_bot"]).to_pandas()
    joined = flags.merge(truth, left_on="source", right_on="user_id", how="inner")
    tp = int((joined["flagged"] & joined["is_bot"]).sum())
    flagged, bots = int(joined["flagged"].sum()), int(joined["is_bot"].sum())
    return {"users": len(joined), "bots": bots, "flagged": flagged, "true_positives": tp,
            "precision": tp / flagged if flagged else None, "recall": tp / bots if bots else None}
