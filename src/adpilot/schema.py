"""The records every room shares.

Pydantic models validate single records at the edges (API, CLI, config files); the matching Arrow schemas carry the
same fields in bulk between rooms (ingest, profiles, training, simulation). Field names are identical in both, so a
batch column and a record attribute always mean the same thing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field


class EventType(StrEnum):
    """What a user did. Behaviour events come from the shop, ad events from serving."""

    page_view = "page_view"
    search = "search"
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"
    review = "review"
    ad_impression = "ad_impression"
    ad_click = "ad_click"
    conversion = "conversion"


class BidStrategy(StrEnum):
    """How a campaign turns predictions into a bid."""

    manual_cpc = "manual_cpc"
    target_cpa = "target_cpa"
    max_clicks = "max_clicks"


class Status(StrEnum):
    active = "active"
    paused = "paused"
    archived = "archived"


Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Record(BaseModel):
    """Base of all records: strict about unknown fields so that a typo is an error, not a silent drop."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Context(Record):
    """Where something happened: device, coarse location, page and ad slot."""

    device: str | None = Field(default=None, max_length=32)
    geo: str | None = Field(default=None, max_length=64)
    page: str | None = Field(default=None, max_length=512)
    slot: str | None = Field(default=None, max_length=64)


class Event(Record):
    """One behaviour or ad event. ``user_id`` is pseudonymous once stored."""

    event_id: str | None = Field(default=None, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    session_id: str | None = Field(default=None, max_length=128)
    ts: datetime
    type: EventType
    item_id: str | None = Field(default=None, max_length=128)
    ad_id: str | None = Field(default=None, max_length=128)
    creative_id: str | None = Field(default=None, max_length=128)
    price: Money | None = None
    value: Money | None = None
    query: str | None = Field(default=None, max_length=1000)
    text: str | None = Field(default=None, max_length=20000)
    rating: float | None = Field(default=None, ge=0, le=5)
    device: str | None = Field(default=None, max_length=32)
    geo: str | None = Field(default=None, max_length=64)
    page: str | None = Field(default=None, max_length=512)
    slot: str | None = Field(default=None, max_length=64)


class Product(Record):
    """A catalogue item. ``category`` is a path, most general first: ``["运动", "篮球", "篮球鞋"]``."""

    product_id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=500)
    description: str = Field(default="", max_length=20000)
    category: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    price: Money
    brand: str | None = Field(default=None, max_length=128)
    language: str = Field(default="zh", pattern=r"^(zh|en)$")


class User(Record):
    """A shopper, known only by a pseudonymous id. Consent flags gate personalisation."""

    user_id: str = Field(min_length=1, max_length=128)
    gender: str | None = Field(default=None, pattern=r"^(f|m|x)$")
    age_band: str | None = Field(default=None, max_length=16)
    geo: str | None = Field(default=None, max_length=64)
    consent_personalisation: bool = True
    consent_ads: bool = True


class Advertiser(Record):
    advertiser_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    domain: str | None = Field(default=None, max_length=200)
    status: Status = Status.active


class Targeting(Record):
    """Who a campaign wants. Empty lists mean "no restriction"; interests are words matched by meaning.

    Interest words and look-alike seeds reach the ``interest_reach`` share of profiled users most similar to them —
    a threshold that means the same whatever the encoder (cosines of e5 and USE live on different scales). An
    explicit cosine ``interest_threshold`` overrides it.
    """

    segments: list[str] = Field(default_factory=list)
    interests: list[str] = Field(default_factory=list)
    interest_reach: float = Field(default=0.3, gt=0, le=1)
    interest_threshold: float | None = Field(default=None, ge=-1, le=1)
    lookalike_seed: list[str] = Field(default_factory=list)
    geo: list[str] = Field(default_factory=list)
    device: list[str] = Field(default_factory=list)
    hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(default_factory=list)
    exclude_purchased: bool = True
    negative_keywords: list[str] = Field(default_factory=list)


class Campaign(Record):
    campaign_id: str = Field(min_length=1, max_length=128)
    advertiser_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    status: Status = Status.active
    total_budget: Money
    daily_budget: Money
    start: datetime | None = None
    end: datetime | None = None
    timezone: str = "Asia/Shanghai"
    bid_strategy: BidStrategy = BidStrategy.manual_cpc
    max_cpc: Money = 1.0
    target_cpa: Money | None = None
    freq_cap_daily: int | None = Field(default=None, ge=1)
    freq_cap_lifetime: int | None = Field(default=None, ge=1)
    targeting: Targeting = Field(default_factory=Targeting)


class Ad(Record):
    ad_id: str = Field(min_length=1, max_length=128)
    campaign_id: str = Field(min_length=1, max_length=128)
    product_id: str = Field(min_length=1, max_length=128)
    landing_url: str | None = Field(default=None, max_length=2000)
    status: Status = Status.active


class Creative(Record):
    """One piece of ad copy. ``source`` says who wrote it (``llm``, ``template``, ``human``)."""

    creative_id: str = Field(min_length=1, max_length=128)
    ad_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=2000)
    language: str = Field(default="zh", pattern=r"^(zh|en)$")
    slot: str | None = Field(default=None, max_length=64)
    audience: str | None = Field(default=None, max_length=128)
    source: str = Field(default="human", pattern=r"^(llm|template|human)$")
    model: str | None = Field(default=None, max_length=200)
    scores: dict[str, float] = Field(default_factory=dict)
    status: Status = Status.active


class AdRequest(Record):
    """One request for ads: a (possibly anonymous) user in a context, asking for ``n_ads`` in a slot."""

    request_id: str = Field(min_length=1, max_length=128)
    user_id: str | None = Field(default=None, max_length=128)
    slot: str = Field(min_length=1, max_length=64)
    page: str | None = Field(default=None, max_length=512)
    query: str | None = Field(default=None, max_length=1000)
    device: str | None = Field(default=None, max_length=32)
    geo: str | None = Field(default=None, max_length=64)
    ts: datetime | None = None
    n_ads: int = Field(default=1, ge=1, le=20)
    floor_price: Money = 0.0
    consent_personalisation: bool = True
    block_domains: list[str] = Field(default_factory=list)
    block_categories: list[str] = Field(default_factory=list)
    explain: bool = False


class PlacedAd(Record):
    """One ad in a decision, with what the auction charged and the token its events must carry."""

    ad_id: str
    campaign_id: str
    creative_id: str | None
    text: str | None
    price: Money
    ecpm: Money
    pctr: Probability
    pcvr: Probability
    token: str


class Decision(Record):
    """The answer to an :class:`AdRequest`: placed ads, or none with the reason."""

    request_id: str
    ads: list[PlacedAd] = Field(default_factory=list)
    no_fill_reason: str | None = None
    explanation: dict[str, object] | None = None


EVENT_ARROW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("item_id", pa.string()),
        ("ad_id", pa.string()),
        ("creative_id", pa.string()),
        ("price", pa.float64()),
        ("value", pa.float64()),
        ("query", pa.string()),
        ("text", pa.string()),
        ("rating", pa.float64()),
        ("device", pa.string()),
        ("geo", pa.string()),
        ("page", pa.string()),
        ("slot", pa.string()),
    ]
)

PRODUCT_ARROW_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("category", pa.list_(pa.string())),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("price", pa.float64()),
        ("brand", pa.string()),
        ("language", pa.string()),
    ]
)

USER_ARROW_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("gender", pa.string()),
        ("age_band", pa.string()),
        ("geo", pa.string()),
        ("consent_personalisation", pa.bool_()),
        ("consent_ads", pa.bool_()),
    ]
)
