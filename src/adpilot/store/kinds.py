"""What can be ingested: one :class:`Kind` per record type, with its table, key and extra rules.

Field rules come from the records in :mod:`adpilot.schema`; a kind only adds what a single record cannot know
(a timestamp in the future, an ad event without an ad) and how its rows are keyed and stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from adpilot import schema
from adpilot.errors import InputFileError, UserError
from adpilot.store.fields import FieldSpec, specs_from_model
from adpilot.store.validate import Check, parsed


@dataclass(frozen=True)
class TimeWindow:
    """Plausible event times: older than ``earliest`` or later than ``latest`` is an outlier."""

    earliest: datetime
    latest: datetime


@dataclass(frozen=True)
class Kind:
    name: str
    table: str
    model: type[BaseModel]
    key: str
    pseudonymised: tuple[str, ...] = ()
    masked: tuple[str, ...] = ()
    extra: Callable[[TimeWindow], Sequence[Check]] = field(default=lambda window: ())
    stored: tuple[FieldSpec, ...] = ()  # table columns the record does not carry, kept when a file has them

    @property
    def specs(self) -> tuple[FieldSpec, ...]:
        return specs_from_model(self.model) + self.stored

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs if s.required)


def _event_checks(window: TimeWindow) -> list[Check]:
    ts, kind = parsed("ts"), parsed("type")
    return [
        Check(f"{ts} > TIMESTAMPTZ '{window.latest.isoformat()}'",
              f"'`ts` ' || {ts} || ' is in the future (after {window.latest:%Y-%m-%d %H:%M}Z)'"),
        Check(f"{ts} < TIMESTAMPTZ '{window.earliest.isoformat()}'",
              f"'`ts` ' || {ts} || ' is before {window.earliest:%Y-%m-%d}'"),
        Check(f"{kind} IN ('ad_impression', 'ad_click') AND {parsed('ad_id')} IS NULL",
              f"'`ad_id` is required for ' || {kind} || ' events'"),
        Check(f"{kind} IN ('add_to_cart', 'purchase') AND {parsed('item_id')} IS NULL",
              f"'`item_id` is required for ' || {kind} || ' events'"),
    ]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("events", "events", schema.Event, "event_id", pseudonymised=("user_id",), masked=("query", "text"),
         extra=_event_checks),
    Kind("products", "products", schema.Product, "product_id"),
    Kind("users", "users", schema.User, "user_id", pseudonymised=("user_id",)),
    Kind("advertisers", "advertisers", schema.Advertiser, "advertiser_id",
         stored=(FieldSpec("api_key_hash", "str", required=False, max_len=200),)),
    Kind("campaigns", "campaigns", schema.Campaign, "campaign_id"),
    Kind("ads", "ads", schema.Ad, "ad_id"),
    Kind("creatives", "creatives", schema.Creative, "creative_id"),
)}

# Ties go to the first: an ads file also has product_id, an events file also has user_id.
_INFERENCE_ORDER = ("events", "ads", "creatives", "campaigns", "products", "advertisers", "users")


def infer_kind(columns: Sequence[str]) -> Kind:
    """The kind sharing the most columns with the file (so a file missing one column is still recognised).

    >>> infer_kind(["user_id", "ts", "type", "item_id"]).name
    'events'
    >>> infer_kind(["ad_id", "campaign_id", "product_id"]).name
    'ads'
    """
    present = set(columns)
    overlap = {name: len(present & {s.name for s in KINDS[name].specs}) for name in _INFERENCE_ORDER}
    best = max(_INFERENCE_ORDER, key=lambda name: overlap[name])
    if overlap[best] == 0:
        raise InputFileError(
            f"cannot tell what the columns {', '.join(sorted(present)) or '(none)'} hold; "
            f"pass --kind ({'|'.join(KINDS)})")
    return KINDS[best]


def resolve_kind(kind: str | None, columns: Sequence[str], *, check_columns: bool, source: str) -> Kind:
    """``kind`` by name, or inferred; a file missing a required column is refused as a whole."""
    if kind is not None and kind not in KINDS:
        raise UserError(f"`kind` must be one of {', '.join(KINDS)}, got '{kind}'")
    chosen = KINDS[kind] if kind is not None else infer_kind(columns)
    missing = [c for c in chosen.required if c not in columns]
    if check_columns and missing:
        raise InputFileError(f"{source} lacks required column(s) {', '.join(missing)} for kind '{chosen.name}' "
                             f"(columns found: {', '.join(columns)})")
    return chosen
