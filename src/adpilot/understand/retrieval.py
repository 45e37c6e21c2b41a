"""Item retrieval from a profile in the encoder's space: several interests per user, not one mean direction.

One time-decayed mean vector per user (the interest vector) lands between a user's tastes: someone who buys
tea and basketball shoes gets a vector near neither. The profile also keeps the recent item sequence, and each
recent item is an interest of its own, so a candidate item scores

    max_j cos(recent_j, item) + interest_weight * cos(interest, item)

the best match among the last ``recent`` items (short-term, multi-modal) plus the long-term interest as a
tie-breaker. Only vectors are used, never interaction counts, so an item nobody has touched yet (cold start)
scores as well as a popular one with the same text. Callers pass only users who consented to personalisation.
"""

from __future__ import annotations

import numpy as np

from adpilot.errors import check_scalar


def profile_item_scores(interest: np.ndarray, recent: np.ndarray, items: np.ndarray,
                        interest_weight: float = 0.3) -> np.ndarray:
    """Scores (n users, m items) from unit ``interest`` (n, d), ``recent`` item rows (n, r; -1 pads) of ``items``.

    >>> items = np.eye(3, dtype=np.float32)
    >>> scores = profile_item_scores(items[[0]], np.array([[1, 2]]), items, interest_weight=0.5)
    >>> scores.round(2).tolist()  # both recent items score 1, the long-term interest adds half to item 0
    [[0.5, 1.0, 1.0]]
    """
    check_scalar(interest_weight, "interest_weight", ge=0)
    if recent.shape[0] != interest.shape[0]:
        raise ValueError(f"`recent` has {recent.shape[0]} rows for {interest.shape[0]} users")
    scores = interest_weight * (interest @ items.T)
    if recent.shape[1] == 0:
        return scores
    pad = recent < 0
    sims = items[np.where(pad, 0, recent)] @ items.T  # (n, r, m)
    sims[pad] = -np.inf
    best = sims.max(axis=1)
    scores += np.where(np.isfinite(best), best, 0.0)
    return scores


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
