"""The two-tower adapter: learns which directions of the LM vectors behaviour follows, and scores unseen items."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.understand.adapter import LMAdapter, next_item_pairs
from adpilot.understand.retrieval import profile_item_scores

N_ITEMS, N_GROUPS = 60, 3


def _catalogue(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors whose group (what users follow) is a weak direction under strong, irrelevant text noise."""
    group = np.arange(N_ITEMS) % N_GROUPS
    vectors = np.concatenate([0.3 * np.eye(N_GROUPS)[group], rng.normal(size=(N_ITEMS, 12))], axis=1)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), group


def _sessions(rng: np.random.Generator, group: np.ndarray, warm: np.ndarray, n_users: int = 300):
    """Each user stays in one group; sessions an hour apart; only ``warm`` items are ever touched."""
    users, rows, times = [], [], []
    for user in range(n_users):
        mine = np.flatnonzero((group == user % N_GROUPS) & warm)
        picked = rng.choice(mine, size=8)
        users += [user] * 8
        rows += picked.tolist()
        times += (user * 1e5 + 3600.0 * np.arange(8)).tolist()
    return np.array(users), np.array(rows), np.array(times)


@pytest.fixture(scope="module")
def fitted() -> tuple[LMAdapter, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    items, group = _catalogue(rng)
    warm = np.arange(N_ITEMS) < 48  # the last 12 items (4 per group) have no interaction at all
    users, rows, times = _sessions(rng, group, warm)
    adapter = LMAdapter(dim=8, hidden=16, history=8, steps=300, batch_size=128, n_negatives=32, lr=0.03, seed=1)
    return adapter.fit(users, rows, times, items), items, group, warm


def test_pairs_start_sessions_and_keep_distinct_histories() -> None:
    users, rows = np.array([0, 0, 0, 0, 0, 1, 1]), np.array([1, 1, 2, 1, 3, 4, 4])
    times = np.array([0, 10, 5000, 5010, 9000, 0, 4000.0])
    histories, targets, when = next_item_pairs(users, rows, times, history=3, min_gap=1800)
    assert targets.tolist() == [2, 3, 4] and when.tolist() == [5000, 9000, 4000]
    assert histories.tolist() == [[1, -1, -1], [1, 2, -1], [4, -1, -1]]  # newest first, each item once
    with pytest.raises(ValueError, match="`history` must be >= 1"):
        next_item_pairs(users, rows, times, history=0)


def test_adapter_learns_the_weak_direction_and_ranks_cold_items_by_it(fitted) -> None:
    adapter, items, group, warm = fitted
    assert adapter.warm_.tolist() == warm.tolist()
    assert adapter.loss_[-1] < adapter.loss_[0]
    history = np.full((N_GROUPS, 8), -1)
    history[:, :3] = [np.flatnonzero((group == g) & warm)[:3] for g in range(N_GROUPS)]
    scores = adapter.scores(history, items)
    raw = profile_item_scores(items[history[:, 0]], history, items)  # the untrained LM profile score
    cold = np.flatnonzero(~warm)
    for g in range(N_GROUPS):
        mine, others = cold[group[cold] == g], cold[group[cold] != g]
        assert scores[g, mine].min() > scores[g, others].max()  # cold items of the user's group come first
        assert raw[g, mine].min() < raw[g, others].max()  # which the raw text similarity does not manage
        top = np.argsort(-scores[g])[:12]
        assert (group[top] == g).all()


def test_new_items_appended_after_fitting_are_scored_from_text(fitted) -> None:
    adapter, items, _, warm = fitted
    cold = np.flatnonzero(~warm)[0]
    vectors, bias = adapter.item_vectors(np.concatenate([items, items[[0, cold]]]))  # new copies of two texts
    np.testing.assert_allclose(vectors[-2:], vectors[[0, cold]], rtol=1e-5, atol=1e-6)
    assert bias[-1] == pytest.approx(bias[cold])  # new like the unseen item: the cold bias
    assert bias[-2] != pytest.approx(bias[0])  # item 0's popularity is its own, not its text's
    with pytest.raises(ValueError, match="`items` has 5 rows, fewer than the 60"):
        adapter.item_vectors(items[:5])


def test_cold_slots_put_the_best_new_items_of_the_users_group_in_the_top_k(fitted) -> None:
    adapter, items, group, warm = fitted
    history = np.full((N_GROUPS, 8), -1)
    history[:, :3] = [np.flatnonzero((group == g) & warm)[:3] for g in range(N_GROUPS)]
    plain = profile_item_scores(items[history[:, 0]], history, items, adapter=adapter)
    reserved = profile_item_scores(items[history[:, 0]], history, items, adapter=adapter, cold_slots=2, k=10)
    for g in range(N_GROUPS):
        top = np.argsort(-reserved[g])[:10]
        assert warm[top[:8]].all() and not warm[top[8:]].any()  # the last 2 of the top 10 are new items
        assert (group[top[8:]] == g).all()  # chosen by the adapter's score: the user's group
        assert top[:8].tolist() == np.argsort(-np.where(warm, plain[g], -np.inf))[:8].tolist()
    with pytest.raises(ValueError, match="`cold_slots` needs a fitted `adapter`"):
        profile_item_scores(items[:1], history[:1], items, cold_slots=2)


def test_bad_input_names_the_problem() -> None:
    items = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"sorted by \(`users`, `times`\)"):
        LMAdapter(steps=1).fit(np.array([1, 0]), np.array([0, 1]), np.array([0.0, 1.0]), items)
    with pytest.raises(ValueError, match="`lr` must be > 0"):
        LMAdapter(lr=0).fit(np.array([0, 0]), np.array([0, 1]), np.array([0.0, 1.0]), items)
    with pytest.raises(ValueError, match="`affinity` cannot be combined with `adapter`"):
        profile_item_scores(items[:1], np.array([[0]]), items, affinity=np.ones((1, 4)),
                            adapter=LMAdapter(steps=1, min_gap=0).fit(np.array([0, 0]), np.array([0, 1]),
                                                                      np.array([0.0, 1.0]), items))
