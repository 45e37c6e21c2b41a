"""LM item-CF: co-occurrence for seen items, the nearest seen twin in LM space for items nobody touched yet."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.store import Store
from adpilot.understand.encoders import USEEncoder
from adpilot.understand.items import build_product_vectors
from adpilot.understand.profiles import build_profiles
from adpilot.understand.retrieval import LMItemCF, category_shares, profile_item_scores, recent_rows

# Items 0-1 are tea, 2-3 basketball; item 4 (a new tea) and item 5 (a new ball) have no interactions.
ITEMS = np.array([[1, 0, 0], [0.95, 0.31, 0], [0, 0, 1], [0, 0.31, 0.95], [0.9, 0.44, 0], [0.1, 0.2, 0.97]],
                 np.float32)
ITEMS /= np.linalg.norm(ITEMS, axis=1, keepdims=True)
USERS = np.array([0, 0, 1, 1, 2, 2])
ITEM_ROWS = np.array([0, 1, 2, 3, 0, 1])


def test_cold_items_borrow_their_lm_twins_co_occurrence() -> None:
    cf = LMItemCF().fit(USERS, ITEM_ROWS, ITEMS)
    assert cf.warm_.tolist() == [True, True, True, True, False, False]
    assert cf.twin_.tolist() == [0, 1, 2, 3, 1, 3]
    scores = cf.scores(np.array([[0, -1], [2, -1]]))
    assert scores[0, 1] > 0 and scores[0, 4] == scores[0, 1]  # the new tea reached through item 1
    assert scores[0, 2] == scores[0, 5] == 0  # nothing links tea to basketball
    assert scores[1, 5] == scores[1, 3] > 0


def test_hybrid_ranks_the_users_cold_item_above_other_tastes() -> None:
    cf = LMItemCF().fit(USERS, ITEM_ROWS, ITEMS)
    rows = recent_rows([["p2"]], {"p0": 0, "p1": 1, "p2": 2, "p3": 3}, recent=5)
    interest = ITEMS[[2]]
    hybrid = profile_item_scores(interest, rows, ITEMS, cf=cf)[0]
    pure = profile_item_scores(interest, rows, ITEMS)[0]
    for scores in (hybrid, pure):
        assert set(np.argsort(-scores)[:3]) == {2, 3, 5}
    assert abs(hybrid.mean()) < 1e-5  # both parts standardised per user


def test_bad_arguments_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="`users` has 2 entries for 1 `item_rows`"):
        LMItemCF().fit(np.array([0, 1]), np.array([0]), ITEMS)
    with pytest.raises(ValueError, match="`lm_weight` must be >= 0"):
        profile_item_scores(ITEMS[:1], np.array([[0]]), ITEMS, cf=LMItemCF().fit(USERS, ITEM_ROWS, ITEMS),
                            lm_weight=-1)
    with pytest.raises(ValueError, match="`recent` has 2 rows for 1 users"):
        profile_item_scores(ITEMS[:1], np.array([[0], [1]]), ITEMS)


def test_an_empty_history_fits_and_scores_zero() -> None:
    cf = LMItemCF().fit(np.array([], np.int64), np.array([], np.int64), ITEMS)
    assert not cf.warm_.any() and cf.twin_.tolist() == list(range(6))
    assert (cf.scores(np.full((2, 3), -1)) == 0).all()


def test_category_shares_follow_the_profiles(small_store: Store, use_encoder: USEEncoder) -> None:
    build_product_vectors(small_store, use_encoder)
    build_profiles(small_store, use_encoder)
    products = ["p6", "p1", "p4", "p9"]
    shares, columns = category_shares(small_store, ["u_tea", "u_ball", "u_private", "nobody"], products)
    affinity = shares[:, columns]
    assert affinity[1].tolist() == [0, 1, 0, 0]  # all of u_ball's weight is on basketball
    assert 0 < affinity[0, 0] < affinity[0, 2] < 1 and affinity[0, 1] == 0  # tea outweighs teaware
    assert not affinity[2:].any()  # no consent, no profile: no category signal
    interest = np.ones((4, ITEMS.shape[1]), np.float32) / np.sqrt(ITEMS.shape[1])
    plain = profile_item_scores(interest, np.full((4, 1), -1), ITEMS[:4])
    mixed = profile_item_scores(interest, np.full((4, 1), -1), ITEMS[:4], affinity=affinity)
    assert np.argmax(mixed[1] - plain[1]) == 1
    with pytest.raises(ValueError, match=r"`affinity` has shape \(4, 3\), expected \(4, 4\)"):
        profile_item_scores(interest, np.full((4, 1), -1), ITEMS[:4], affinity=affinity[:, :3])
