"""Item retrieval from a profile in the encoder's space: several interests per user, not one mean direction.

One time-decayed mean vector per user (the interest vector) lands between a user's tastes: someone who buys
tea and basketball shoes gets a vector near neither. The profile also keeps the recent item sequence, and each
recent item is an interest of its own, so a candidate item scores

    max_j cos(recent_j, item) + interest_weight * cos(interest, item)

the best match among the last ``recent`` items (short-term, multi-modal) plus the long-term interest. Only
vectors are used, never interaction counts, so an item nobody has touched yet (cold start) scores as well as a
popular one with the same text. Callers pass only users who consented to personalisation.

The user's own category affinity (``profile_affinity``, decayed shares) may be added as
``affinity_weight * log(share of the item's category + 0.001)``: it says how the user's visits split between
categories, which a sum of similarities does not; it also needs no other user's interactions.

Where interactions exist, :class:`LMItemCF` adds them: item-based CF (cosine of co-occurrence over users) whose
cold items (no interactions) borrow the CF column of their nearest warm item in LM space, so the behaviour
signal reaches them through the language model; :func:`profile_item_scores` with ``cf=`` mixes the two, each
standardised per user.

With a fitted :class:`~adpilot.understand.adapter.LMAdapter` the recommended setting (``RECOMMENDED``) is the
adapter mixed with item-CF for the warm part of the list, and ``COLD_SLOTS`` of the top ``k`` reserved for the
best items nobody has touched yet by the adapter's score (:func:`reserve_cold_slots`). New items rarely win a
slot on expected hit probability, so a list ranked for overall recall alone shows none of them; a fixed number
of reserved slots costs a predictable sliver of warm recall (about 0.003 each at ``k`` 50), where an additive
boost of new items' scores costs whatever the model's score scale makes it cost.

The default weights were picked on worlds of seed 9 (312, 3,000 and 4,000 products), not on the worlds whose
figures ``benchmarks/bench_understand_quality.py`` reports. ``COLD_SLOTS`` is the largest number of reserved
slots for which, on the 20k-user seed-9 world, the paired 95% lower bound of the overall Recall@50 gain over
item-CF stayed at or above +0.005.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse

from adpilot.errors import check_scalar
from adpilot.store import Store

if TYPE_CHECKING:
    from adpilot.understand.adapter import LMAdapter

ITEM_EVENTS = ("page_view", "click", "add_to_cart", "purchase")  # the interactions retrieval learns from
COLD_SLOTS = 3
ADAPTER_CF_LM_WEIGHT = 8.0
RECOMMENDED = {"lm_weight": ADAPTER_CF_LM_WEIGHT, "cold_slots": COLD_SLOTS, "k": 50}


class LMItemCF:
    """Item-to-item CF over a catalogue whose cold items are reached through LM similarity.

    ``fit`` learns ``similarity_`` (sparse cosine of item co-occurrence over users, diagonal 1 for seen items),
    ``warm_`` (items with at least one interaction) and ``twin_`` (each item's own row if warm, else the warm
    item whose vector is most similar: a new basketball shoe inherits the co-occurrences of its closest seen twin).

    >>> items = np.array([[1, 0], [0.9, 0.436], [0, 1]], np.float32)
    >>> cf = LMItemCF().fit(np.array([0, 0, 1]), np.array([0, 2, 2]), items)
    >>> cf.warm_.tolist(), cf.twin_.tolist()
    ([True, False, True], [0, 0, 2])
    """

    def fit(self, users: np.ndarray, item_rows: np.ndarray, items: np.ndarray, chunk: int = 4096) -> LMItemCF:
        """Learn from interactions (``users``, ``item_rows``: codes, one pair per interaction) and item vectors."""
        if len(users) != len(item_rows):
            raise ValueError(f"`users` has {len(users)} entries for {len(item_rows)} `item_rows`")
        n_items = len(items)
        _, user_codes = np.unique(users, return_inverse=True)
        x = sparse.csr_matrix((np.ones(len(users), np.float32), (user_codes, item_rows)),
                              shape=(int(user_codes.max(initial=-1)) + 1, n_items))
        x.data[:] = 1  # distinct (user, item) pairs
        co = (x.T @ x).tocsr()
        norms = sparse.diags(1 / np.sqrt(np.maximum(co.diagonal(), 1)))
        self.similarity_ = (norms @ co @ norms).tocsr()
        self.warm_ = co.diagonal() > 0
        self.twin_ = np.arange(n_items)
        cold, warm = np.flatnonzero(~self.warm_), np.flatnonzero(self.warm_)
        if len(warm):
            for start in range(0, len(cold), chunk):
                part = cold[start : start + chunk]
                self.twin_[part] = warm[np.argmax(items[part] @ items[warm].T, axis=1)]
        return self

    def scores(self, recent: np.ndarray) -> np.ndarray:
        """(n users, m items): sum of the similarities to the user's ``recent`` item rows (-1 pads), cold items
        taking their twin's column."""
        users, slots = np.nonzero(recent >= 0)
        profile = sparse.csr_matrix((np.ones(len(users), np.float32), (users, recent[users, slots])),
                                    shape=(len(recent), self.similarity_.shape[0]))
        return (profile @ self.similarity_).toarray()[:, self.twin_]


def profile_item_scores(interest: np.ndarray, recent: np.ndarray, items: np.ndarray,
                        interest_weight: float = 0.5, cf: LMItemCF | None = None, lm_weight: float = 0.25,
                        affinity: np.ndarray | None = None, affinity_weight: float = 0.1,
                        adapter: LMAdapter | None = None, cold_slots: int = 0, k: int = 50) -> np.ndarray:
    """Scores (n users, m items) from unit ``interest`` (n, d), ``recent`` item rows (n, r; -1 pads) of ``items``.

    Without ``cf``: the pure language-model score of the module docstring, plus the category term when
    ``affinity`` (n, m: each item's category share, from :func:`category_shares`) is given; with a fitted
    ``adapter`` (:class:`~adpilot.understand.adapter.LMAdapter`) its learned score from ``recent`` instead (it
    does not use ``interest`` or ``affinity``, and ``items`` must be its fitted catalogue, new items appended).
    With a fitted ``cf``: its scores plus ``lm_weight`` times that score, both standardised per user (the scales
    differ). With ``adapter`` and ``cold_slots``, the last ``cold_slots`` places of the top ``k`` go to the items
    without training interactions that the adapter scores best (:func:`reserve_cold_slots`); the recommended
    setting is ``profile_item_scores(interest, recent, items, adapter=adapter, cf=cf, **RECOMMENDED)``.

    >>> items = np.eye(3, dtype=np.float32)
    >>> scores = profile_item_scores(items[[0]], np.array([[1, 2]]), items, interest_weight=0.5)
    >>> scores.round(2).tolist()  # both recent items score 1, the long-term interest adds half to item 0
    [[0.5, 1.0, 1.0]]
    """
    check_scalar(interest_weight, "interest_weight", ge=0)
    check_scalar(lm_weight, "lm_weight", ge=0)
    check_scalar(affinity_weight, "affinity_weight", ge=0)
    if cold_slots and adapter is None:
        raise ValueError("`cold_slots` needs a fitted `adapter`, whose score ranks the items without interactions")
    if recent.shape[0] != interest.shape[0]:
        raise ValueError(f"`recent` has {recent.shape[0]} rows for {interest.shape[0]} users")
    if adapter is not None:
        if affinity is not None:
            raise ValueError("`affinity` cannot be combined with `adapter`, which learned its own category weights")
        scores = adapter.scores(recent, items)
        mixed = scores if cf is None else _standardise(cf.scores(recent)) + lm_weight * _standardise(scores)
        return reserve_cold_slots(mixed, scores, ~adapter.warm(len(items)), cold_slots, k) if cold_slots else mixed
    scores = interest_weight * (interest @ items.T)
    if recent.shape[1]:
        pad = recent < 0
        sims = items[np.where(pad, 0, recent)] @ items.T  # (n, r, m)
        sims[pad] = -np.inf
        best = sims.max(axis=1)
        scores += np.where(np.isfinite(best), best, 0.0)
    if affinity is not None:
        if affinity.shape != scores.shape:
            raise ValueError(f"`affinity` has shape {affinity.shape}, expected {scores.shape}")
        scores += affinity_weight * np.log(affinity + 1e-3)
    if cf is None:
        return scores
    return _standardise(cf.scores(recent)) + lm_weight * _standardise(scores)


def reserve_cold_slots(scores: np.ndarray, cold_scores: np.ndarray, cold: np.ndarray, slots: int,
                       k: int) -> np.ndarray:
    """Scores (n, m; higher first) whose top ``k`` is the best ``k - slots`` items not ``cold`` (m,) by
    ``scores``, then the best ``slots`` ``cold`` items by ``cold_scores``; after the top ``k`` come the other
    warm items, then the other cold ones. Ties are broken by column order.

    A list ranked for overall recall gives new items (cold: no interactions yet) no place, since each one is less
    likely than the last warm item; reserving a fixed few places buys them exposure at a known cost in warm recall.

    >>> scores = np.array([[4.0, 3, 2, 1, 9, 8]])
    >>> cold = np.array([False, False, False, False, True, True])
    >>> order = np.argsort(-reserve_cold_slots(scores, scores, cold, slots=1, k=3), axis=1)
    >>> order.tolist()  # two warm items, then the best cold one, then the rest
    [[0, 1, 4, 2, 3, 5]]
    """
    check_scalar(k, "k", ge=1)
    check_scalar(slots, "slots", ge=0, le=k)
    if scores.shape != cold_scores.shape or scores.shape[1:] != cold.shape:
        raise ValueError(f"`scores` {scores.shape}, `cold_scores` {cold_scores.shape} and `cold` {cold.shape} "
                         "do not match: one row per user, one column (and one `cold` entry) per item")
    slots = min(slots, int(cold.sum()))
    warm_rank, cold_rank = _ranks(np.where(cold, -np.inf, scores)), _ranks(np.where(cold, cold_scores, -np.inf))
    place = np.where(cold, np.where(cold_rank < slots, k - slots + cold_rank, scores.shape[1] + cold_rank),
                     np.where(warm_rank < k - slots, warm_rank, warm_rank + slots))
    return -place.astype(np.float64)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Each entry's 0-based rank within its row, highest first, ties by column order."""
    ranks = np.empty(scores.shape, dtype=np.int64)
    np.put_along_axis(ranks, np.argsort(-scores, axis=1, kind="stable"), np.arange(scores.shape[1]), axis=1)
    return ranks


def _standardise(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-9)


def recent_rows(sequences: list[list[str]], position: dict[str, int], recent: int) -> np.ndarray:
    """The last ``recent`` distinct known items of each sequence, newest first, as item-matrix rows (-1 pads).

    >>> recent_rows([["a", "x", "b", "a"], []], {"a": 0, "b": 1}, recent=3).tolist()
    [[0, 1, -1], [-1, -1, -1]]
    """
    check_scalar(recent, "recent", ge=1)
    out = np.full((len(sequences), recent), -1, dtype=np.int64)
    for i, sequence in enumerate(sequences):
        picked = list(dict.fromkeys(position[s] for s in reversed(sequence) if s in position))[:recent]
        out[i, : len(picked)] = picked
    return out


def category_shares(store: Store, users: list[str], product_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(``users`` x categories + 1) shares of each user's decayed category weight in ``profile_affinity`` (lists
    of ``profile_keys`` ids), and
    the column of each product's category (its first two levels, the profiles' key); the last column, all zero,
    is for products in a category none of these users has. ``shares[:, columns]`` is the ``affinity`` of
    :func:`profile_item_scores`.
    """
    wanted = pa.table({"user_id": pa.array(users, pa.string()),  # noqa: F841
                       "row": pa.array(np.arange(len(users), dtype=np.int64))})
    wanted_products = pa.table({"product_id": pa.array(product_ids, pa.string()),  # noqa: F841
                                "col": pa.array(np.arange(len(product_ids), dtype=np.int64))})
    shares = store.con.sql("""
        WITH a AS (SELECT user_id, unnest(key_ids) AS key_id, unnest(weights) AS weight FROM profile_affinity
                   WHERE user_id IN (SELECT user_id FROM wanted))
        SELECT w.row, k.key, a.weight / sum(a.weight) OVER (PARTITION BY a.user_id) AS share
        FROM a JOIN profile_keys k USING (key_id) JOIN wanted w USING (user_id)
        WHERE k.kind = 'category' AND a.weight > 0""").df()
    keys = store.con.sql("""
        SELECT array_to_string(p.category[1:2], '/') AS key FROM wanted_products x
        LEFT JOIN products p USING (product_id) ORDER BY x.col""").df()["key"]
    categories = pd.Index(shares["key"].unique())
    matrix = np.zeros((len(users), len(categories) + 1), np.float32)
    matrix[shares["row"].to_numpy(), categories.get_indexer(shares["key"])] = shares["share"].to_numpy()
    found = categories.get_indexer(keys.fillna(""))
    return matrix, np.where(found >= 0, found, len(categories))
