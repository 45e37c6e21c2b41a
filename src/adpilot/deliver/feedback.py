"""Feedback from served ads: impression, click and conversion events carrying the decision's signed token.

Each event is checked (signature, expiry; conversions get an attribution window after expiry), de-duplicated by
(token, type), and then applied: an impression and a click update the creative's bandit counts, a click commits
the reserved price to the campaign's spend (CPC billing). Accepted events come back as an Arrow batch in the
store's ``events`` schema, for the next training round.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

from adpilot.deliver.base import Counters
from adpilot.deliver.tokens import TokenError, TokenSigner
from adpilot.schema import EVENT_ARROW_SCHEMA, EventType

EventKind = Literal["impression", "click", "conversion"]
_STORE_TYPE = {"impression": EventType.ad_impression, "click": EventType.ad_click,
               "conversion": EventType.conversion}


@dataclass(frozen=True)
class AdEvent:
    """One event reported by a page or app; ``ts`` in epoch seconds (now when absent)."""

    token: str
    type: EventKind
    ts: float | None = None
    value: float | None = None  # order value of a conversion


@dataclass(frozen=True)
class FeedbackOutcome:
    """What happened to one event: accepted (with the amount charged) or rejected with a reason."""

    accepted: bool
    reason: str | None = None
    charged: float = 0.0
    row: dict[str, object] | None = None


class FeedbackProcessor:
    """Validates, de-duplicates and applies ad events against the counters."""

    def __init__(self, counters: Counters, signer: TokenSigner, conversion_window_s: float = 7 * 86400) -> None:
        self.counters = counters
        self.signer = signer
        self.conversion_window_s = conversion_window_s

    def record(self, event: AdEvent) -> FeedbackOutcome:
        """Apply one event; a forged, expired, duplicate or unknown-type event is rejected, never applied."""
        if event.type not in _STORE_TYPE:
            return FeedbackOutcome(False, f"unknown event type {event.type!r}")
        now = time.time() if event.ts is None else float(event.ts)
        grace = self.conversion_window_s if event.type == "conversion" else 0.0
        try:
            claims = self.signer.verify(event.token, now=now, grace_s=grace)
        except TokenError as error:
            return FeedbackOutcome(False, str(error))
        key = f"{claims.token_id}:{event.type}"
        if not self.counters.first_seen(key, ttl_s=claims.expires_at - now + self.conversion_window_s, now=now):
            return FeedbackOutcome(False, f"duplicate {event.type} for this token")
        charged = 0.0
        if event.type == "impression" and claims.creative_id is not None:
            self.counters.add_bandit(claims.creative_id, 1, 0)
        elif event.type == "click":
            charged = self.counters.commit(claims.campaign_id, claims.token_id, now=now) or 0.0
            if claims.creative_id is not None:
                self.counters.add_bandit(claims.creative_id, 0, 1)
        row: dict[str, object] = {
            "event_id": hashlib.sha256(key.encode()).hexdigest()[:32],
            "user_id": claims.user_id or "anonymous", "session_id": None,
            "ts": datetime.fromtimestamp(now, UTC), "type": _STORE_TYPE[event.type].value, "item_id": None,
            "ad_id": claims.ad_id, "creative_id": claims.creative_id,
            "price": charged if event.type == "click" else None, "value": event.value, "query": None,
            "text": None, "rating": None, "device": None, "geo": None, "page": None, "slot": claims.slot,
        }
        return FeedbackOutcome(True, None, charged, row)

    def record_many(self, events: Iterable[AdEvent]) -> tuple[pa.Table, list[tuple[int, str]]]:
        """(accepted events as an Arrow table in ``EVENT_ARROW_SCHEMA``, [(position, reason)] of rejected ones)."""
        rows, rejected = [], []
        for i, event in enumerate(events):
            outcome = self.record(event)
            if outcome.accepted:
                rows.append(outcome.row)
            else:
                rejected.append((i, outcome.reason or "rejected"))
        return pa.Table.from_pylist(rows, schema=EVENT_ARROW_SCHEMA), rejected
