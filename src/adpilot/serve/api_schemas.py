"""Create / Update / Public schema families for the management API (one family per entity).

Create bodies carry what the advertiser chooses; the server fills ids and ownership. Update bodies are all-optional
and reject unknown fields. Public bodies are what the API returns — never the API key hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import ClassVar
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adpilot.schema import BidStrategy, Money, Status, Targeting

Id = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Update(_Body):
    """A PATCH body: omitted fields stay as they are; ``null`` clears only the fields listed in ``clearable``."""

    clearable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> _Update:
        for name in sorted(self.model_fields_set - self.clearable):
            if getattr(self, name) is None:
                raise ValueError(f"`{name}` cannot be null: omit it to keep the current value")
        return self


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _aware(moment: datetime | None) -> datetime | None:
    """Times without a zone are read as UTC, so that any two can be compared."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class AdvertiserCreate(_Body):
    advertiser_id: str | None = Id
    name: str = Field(min_length=1, max_length=200)
    domain: str | None = Field(default=None, max_length=200)


class AdvertiserPublic(BaseModel):
    advertiser_id: str
    name: str
    domain: str | None
    status: str


class AdvertiserCreated(BaseModel):
    advertiser: AdvertiserPublic
    api_key: str = Field(description="Shown once; only its hash is stored.")


class _BudgetRules(_Body):
    @field_validator("start", "end", mode="after", check_fields=False)
    @classmethod
    def _with_zone(cls, moment: datetime | None) -> datetime | None:
        return _aware(moment)

    @field_validator("timezone", mode="after", check_fields=False)
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is not None and name not in _time_zones():
            raise ValueError(f"`timezone` must be an IANA time zone such as Asia/Shanghai, got {name!r}")
        return name

    @model_validator(mode="after")
    def _daily_within_total(self) -> _BudgetRules:
        total, daily = getattr(self, "total_budget", None), getattr(self, "daily_budget", None)
        if total is not None and daily is not None and daily > total:
            raise ValueError(f"`daily_budget` must be <= `total_budget`, got {daily} > {total}")
        start, end = getattr(self, "start", None), getattr(self, "end", None)
        if start is not None and end is not None and end <= start:
            raise ValueError("`end` must be after `start`")
        if getattr(self, "bid_strategy", None) == BidStrategy.target_cpa and getattr(self, "target_cpa", 1) is None:
            raise ValueError("`target_cpa` is required when `bid_strategy` is target_cpa")
        return self


class CampaignCreate(_BudgetRules):
    campaign_id: str | None = Id
    name: str = Field(min_length=1, max_length=200)
    total_budget: Money
    daily_budget: Money
    start: datetime | None = None
    end: datetime | None = None
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    bid_strategy: BidStrategy = BidStrategy.manual_cpc
    max_cpc: Money = 1.0
    target_cpa: Money | None = None
    freq_cap_daily: int | None = Field(default=None, ge=1, le=10_000)
    freq_cap_lifetime: int | None = Field(default=None, ge=1, le=1_000_000)
    targeting: Targeting = Field(default_factory=Targeting)


class CampaignUpdate(_BudgetRules, _Update):
    clearable = frozenset({"start", "end", "target_cpa", "freq_cap_daily", "freq_cap_lifetime"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    total_budget: Money | None = None
    daily_budget: Money | None = None
    start: datetime | None = None
    end: datetime | None = None
    bid_strategy: BidStrategy | None = None
    max_cpc: Money | None = None
    target_cpa: Money | None = None
    freq_cap_daily: int | None = Field(default=None, ge=1, le=10_000)
    freq_cap_lifetime: int | None = Field(default=None, ge=1, le=1_000_000)
    targeting: Targeting | None = None
    status: Status | None = None


class CampaignPublic(BaseModel):
    campaign_id: str
    advertiser_id: str
    name: str | None
    status: str | None
    total_budget: float | None
    daily_budget: float | None
    start: datetime | None
    end: datetime | None
    timezone: str | None
    bid_strategy: str | None
    max_cpc: float | None
    target_cpa: float | None
    freq_cap_daily: int | None
    freq_cap_lifetime: int | None
    targeting: dict[str, object] | None


class CampaignReport(BaseModel):
    campaign_id: str
    impressions: int
    clicks: int
    conversions: int
    spend: float
    revenue: float
    ctr: float | None
    cvr: float | None


class AdCreate(_Body):
    ad_id: str | None = Id
    campaign_id: str = Field(min_length=1, max_length=128)
    product_id: str = Field(min_length=1, max_length=128)
    landing_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")


class AdUpdate(_Update):
    clearable = frozenset({"landing_url"})

    landing_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    status: Status | None = None


class AdPublic(BaseModel):
    ad_id: str
    campaign_id: str
    product_id: str
    landing_url: str | None
    status: str | None


class CreativeCreate(_Body):
    creative_id: str | None = Id
    ad_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=2000)
    language: str = Field(default="zh", pattern=r"^(zh|en)$")
    slot: str | None = Field(default=None, max_length=64)


class CreativeUpdate(_Update):
    text: str | None = Field(default=None, min_length=1, max_length=2000)
    status: Status | None = None


class CreativePublic(BaseModel):
    creative_id: str
    ad_id: str
    text: str
    language: str | None
    slot: str | None
    source: str | None
    status: str | None
    scores: dict[str, float] | None
