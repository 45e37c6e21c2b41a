"""Contracts of the deliver room: what the decision path needs from other rooms, and what its parts share.

The engine depends only on these protocols, so the rank room's exported scorer, the understand room's encoders and
any counters backend plug in without the engine knowing which one it got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Text to unit vectors, as ``understand.base.TextEncoder``: ``encode(texts, kind) -> float32 [n, d]``."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], kind: Literal["query", "passage"] = "query") -> np.ndarray: ...


GATHERED = ("ad_ids", "product_ids", "ad_vectors", "prior_ctr", "prior_cvr", "campaign_ids", "recent_items")


class CandidateBatch:
    """Everything a scorer may use for one request and its ``k`` candidate ads (arrays are row-aligned).

    ``user_vector`` is ``None`` for an anonymous or opted-out user; ``context_vector`` is the query's or page's
    vector (``None`` without either). Vectors are unit-norm float32: ``ad_vectors`` has shape (k, d).

    The :data:`GATHERED` fields (the per-candidate columns and the user's recent items) are given, or
    (:meth:`lazy`, as the engine builds it) gathered on first read and then kept: a scorer pays only for what it
    reads — one that never reads ``ad_vectors`` saves the gather of k x d floats, the costliest part of a batch.
    ``len(batch)`` is ``k`` without reading any column. Read-only.

    >>> b = CandidateBatch.lazy(2, lambda name: np.arange(2) if name == "prior_ctr" else None, user_vector=None,
    ...                         context_vector=None, user_id=None, slot="feed", device=None, geo=None, hour=0)
    >>> len(b), b.prior_ctr.tolist()
    (2, [0, 1])
    """

    ad_ids: np.ndarray  # (k,) object
    product_ids: np.ndarray  # (k,) object
    ad_vectors: np.ndarray  # (k, d) float32
    prior_ctr: np.ndarray  # (k,) float64, smoothed historical CTR of the ad
    prior_cvr: np.ndarray  # (k,) float64, smoothed historical conversions per click
    user_vector: np.ndarray | None  # (d,) float32
    context_vector: np.ndarray | None  # (d,) float32
    user_id: str | None
    recent_items: tuple[str, ...]
    slot: str
    device: str | None
    geo: str | None
    hour: int
    campaign_ids: np.ndarray | None  # (k,) object
    segment: str | None  # the user's segment key, when personalised
    _k: int

    def __init__(self, ad_ids: np.ndarray, product_ids: np.ndarray, ad_vectors: np.ndarray, prior_ctr: np.ndarray,
                 prior_cvr: np.ndarray, user_vector: np.ndarray | None, context_vector: np.ndarray | None,
                 user_id: str | None, recent_items: tuple[str, ...], slot: str, device: str | None,
                 geo: str | None, hour: int, campaign_ids: np.ndarray | None = None,
                 segment: str | None = None) -> None:
        self._set(len(ad_ids), None, ad_ids=ad_ids, product_ids=product_ids, ad_vectors=ad_vectors,
                  prior_ctr=prior_ctr, prior_cvr=prior_cvr, campaign_ids=campaign_ids, user_vector=user_vector,
                  context_vector=context_vector, user_id=user_id, recent_items=recent_items, slot=slot,
                  device=device, geo=geo, hour=hour, segment=segment)

    @classmethod
    def lazy(cls, k: int, gather: Callable[[str], object], *, user_vector: np.ndarray | None,
             context_vector: np.ndarray | None, user_id: str | None, slot: str, device: str | None,
             geo: str | None, hour: int, segment: str | None = None) -> CandidateBatch:
        """A batch of ``k`` candidates whose :data:`GATHERED` fields come from ``gather(name)`` when first read."""
        batch = cls.__new__(cls)
        batch._set(k, gather, user_vector=user_vector, context_vector=context_vector, user_id=user_id, slot=slot,
                   device=device, geo=geo, hour=hour, segment=segment)
        return batch

    def _set(self, k: int, gather: Callable[[str], object] | None, **fields: object) -> None:
        self.__dict__.update(fields, _k=k, _gather=gather)

    def __getattr__(self, name: str) -> object:
        """Only reached for a field not read yet (set attributes are found first): gather it now, keep it."""
        gather = self.__dict__.get("_gather")
        if gather is None or name not in GATHERED:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = self.__dict__[name] = gather(name)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {type(self).__name__} is read-only (tried to set {name!r})")

    def __len__(self) -> int:
        return self._k


@runtime_checkable
class Scorer(Protocol):
    """Predicts click and conversion probabilities: ``score(batch) -> (pctr, pcvr)``, float64 (k,) in [0, 1].

    ``pcvr`` is the probability of a conversion given a click (what oCPC multiplies by the target CPA).
    """

    def score(self, batch: CandidateBatch) -> tuple[np.ndarray, np.ndarray]: ...


class AdmissionState(NamedTuple):
    """What admission reads for a chunk of campaigns: budget state per campaign (float64) and, for one user, the
    served counts (int64) of the capped campaigns among them, aligned with the ``capped`` positions asked for."""

    spent_total: np.ndarray
    spent_day: np.ndarray
    reserved: np.ndarray
    served_today: np.ndarray
    served_lifetime: np.ndarray


PlacementOutcome = Literal["placed", "budget", "frequency"]


class Placement(NamedTuple):
    """Result of :meth:`Counters.place`: ``placed`` (budget held and exposure counted), or refused by the
    ``budget`` (spent meanwhile, or a repeated reservation id) or by a ``frequency`` cap, nothing written then;
    with the ``(impressions, clicks)`` of the creatives asked for when placed (empty arrays otherwise)."""

    outcome: PlacementOutcome
    impressions: np.ndarray
    clicks: np.ndarray


class Counters(Protocol):
    """Shared mutable state of serving: budgets (spend and reservations), frequency caps, dedup, bandit counts.

    Every check-and-change is atomic, so that concurrent requests (threads, or processes sharing Redis) can never
    overspend a budget or exceed a cap. Keys are ids (campaign, user, creative) and local dates ``YYYY-MM-DD``.
    Times are epoch seconds, passed in so that simulation can run on its own clock.
    """

    def budget_state(
        self, campaign_ids: Sequence[str], days: Sequence[str], now: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(spent_total, spent_day, reserved)`` float64 arrays, one per campaign; expired reservations dropped."""
        ...

    def admission_state(
        self, campaign_ids: Sequence[str], days: Sequence[str], now: float, user_id: str | None,
        capped: Sequence[int],
    ) -> AdmissionState:
        """:meth:`budget_state` of every campaign and, with a ``user_id``, the user's ``(served_today,
        served_lifetime)`` counts of the campaigns at positions ``capped``: what the engine reads to admit
        candidates, in one round trip for a remote store. Only a pre-filter (:meth:`place` checks again,
        atomically), so a shared store may answer the budget part from a state read a moment ago (Redis: up to
        ``budget_ttl_s``, 5 s); the counts are always current."""
        ...

    def place(
        self, campaign_id: str, day: str, amount: float, total_budget: float, daily_budget: float,
        reservation_id: str, expires_at: float, now: float, user_id: str | None, cap_daily: int,
        cap_lifetime: int, creative_ids: Sequence[str],
    ) -> Placement:
        """Hold ``amount`` iff ``spent + reserved + amount`` stays within both budgets and, with a ``user_id`` and a
        cap (0 = none), count one exposure iff both caps still allow it — both written or neither; when placed, also
        the :meth:`bandit_counts` of ``creative_ids`` (one round trip in all). A capless placement counts nothing."""
        ...

    def commit(self, campaign_id: str, reservation_id: str, now: float) -> float | None:
        """Turn a live reservation into spend (on its day); returns the amount, ``None`` if none is live."""
        ...

    def release(self, campaign_id: str, reservation_id: str) -> None:
        """Drop a reservation without spending it."""
        ...

    def first_seen(self, key: str, ttl_s: float, now: float | None = None) -> bool:
        """``True`` the first time ``key`` is seen within ``ttl_s`` (event de-duplication)."""
        ...

    def bandit_counts(self, creative_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(impressions, clicks)`` int64 arrays per creative."""
        ...

    def add_bandit(self, creative_id: str, impressions: int, clicks: int) -> None:
        """Add observed impressions and clicks to one creative's counts."""
        ...


def clip(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``np.clip`` for the few values of one request, without its Python-level dispatch (several microseconds a
    call on the decision path); the same result, NaN included: the larger of ``x`` and ``low``, then the smaller
    of that and ``high``."""
    return np.minimum(np.maximum(x, low), high)


class CountersUnavailable(RuntimeError):
    """The counters backend cannot be reached; the engine answers no-fill rather than risk overspending."""
