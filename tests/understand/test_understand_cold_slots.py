"""Reserved places for new items: a fixed few of the top k, filled by the cold scorer, the rest by the warm one."""

from __future__ import annotations

import numpy as np
import pytest

from adpilot.understand.retrieval import reserve_cold_slots


def test_reserved_places_hold_the_best_cold_items_and_keep_the_warm_order() -> None:
    rng = np.random.default_rng(0)
    scores, cold_scores = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    cold = np.arange(30) % 3 == 0
    order = np.argsort(-reserve_cold_slots(scores, cold_scores, cold, slots=3, k=10), axis=1)
    for user in range(5):
        warm_order = [i for i in np.argsort(-scores[user]) if not cold[i]]
        cold_order = [i for i in np.argsort(-cold_scores[user]) if cold[i]]
        assert order[user, :7].tolist() == warm_order[:7]
        assert order[user, 7:10].tolist() == cold_order[:3]
        assert order[user, 10:].tolist() == warm_order[7:] + cold_order[3:]  # then the rest, warm first


def test_fewer_cold_items_than_places_leave_no_gap_and_bad_input_is_named() -> None:
    scores = np.array([[5.0, 4, 3, 2, 1]])
    cold = np.array([False, False, False, False, True])
    order = np.argsort(-reserve_cold_slots(scores, scores, cold, slots=3, k=4), axis=1)
    assert order.tolist() == [[0, 1, 2, 4, 3]]  # one cold item takes one place; warm items fill the others
    with pytest.raises(ValueError, match="`slots` must be <= 4"):
        reserve_cold_slots(scores, scores, cold, slots=5, k=4)
    with pytest.raises(ValueError, match="do not match"):
        reserve_cold_slots(scores, scores, cold[:3], slots=1, k=4)
