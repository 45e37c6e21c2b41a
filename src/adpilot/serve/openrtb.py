"""OpenRTB 2.6: the subset of BidRequest / BidResponse adpilot reads and writes, and the adapter to our records.

Unknown fields are accepted and ignored, as the specification asks of bidders; fields we act on are typed, so a
wrong type is a 400 that names the field. Privacy signals win over everything: ``regs.coppa = 1`` or GDPR without a
consent string, or any GPP section, turns the request into a non-personalised one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from adpilot.deliver.snapshot import CampaignTable
from adpilot.schema import AdRequest, Decision


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Format(_Open):
    w: int | None = Field(default=None, ge=0)
    h: int | None = Field(default=None, ge=0)


class Banner(_Open):
    w: int | None = Field(default=None, ge=0)
    h: int | None = Field(default=None, ge=0)
    format: list[Format] = Field(default_factory=list)


class Native(_Open):
    request: str | None = None
    ver: str | None = None


class Imp(_Open):
    id: str = Field(min_length=1, max_length=64)
    banner: Banner | None = None
    native: Native | None = None
    tagid: str | None = Field(default=None, max_length=256)
    bidfloor: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    bidfloorcur: str = "CNY"


class Publisher(_Open):
    id: str | None = None
    domain: str | None = None


class Site(_Open):
    id: str | None = None
    domain: str | None = None
    page: str | None = Field(default=None, max_length=2048)
    keywords: str | None = Field(default=None, max_length=1000)
    cat: list[str] = Field(default_factory=list)
    publisher: Publisher | None = None


class App(_Open):
    id: str | None = None
    bundle: str | None = None
    keywords: str | None = Field(default=None, max_length=1000)
    cat: list[str] = Field(default_factory=list)


class Geo(_Open):
    country: str | None = None
    region: str | None = None
    city: str | None = None


class Device(_Open):
    ua: str | None = None
    ip: str | None = None
    devicetype: int | None = Field(default=None, ge=0, le=7)
    os: str | None = None
    geo: Geo | None = None


class User(_Open):
    id: str | None = Field(default=None, max_length=128)
    buyeruid: str | None = Field(default=None, max_length=128)
    consent: str | None = None


class Regs(_Open):
    coppa: int | None = Field(default=None, ge=0, le=1)
    gdpr: int | None = Field(default=None, ge=0, le=1)
    gpp: str | None = None
    gpp_sid: list[int] = Field(default_factory=list)


class BidRequest(_Open):
    id: str = Field(min_length=1, max_length=128)
    imp: list[Imp] = Field(min_length=1, max_length=20)
    site: Site | None = None
    app: App | None = None
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    tmax: int | None = Field(default=None, ge=1, le=10_000)
    bcat: list[str] = Field(default_factory=list)
    badv: list[str] = Field(default_factory=list)
    cur: list[str] = Field(default_factory=list)
    test: int = Field(default=0, ge=0, le=1)


class Bid(BaseModel):
    id: str
    impid: str
    price: float
    adm: str
    crid: str
    cid: str
    adid: str
    adomain: list[str]
    nurl: str


class SeatBid(BaseModel):
    bid: list[Bid]
    seat: str = "adpilot"


class BidResponse(BaseModel):
    id: str
    seatbid: list[SeatBid]
    bidid: str
    cur: str = "CNY"


CURRENCY = "CNY"
_DEVICE_TYPES = {1: "mobile", 2: "desktop", 3: "tv", 4: "mobile", 5: "tablet", 6: "tv", 7: "tv"}


def personalisation_allowed(request: BidRequest) -> bool:
    """False under COPPA, under GDPR without a consent string, and under any GPP section (``gpp_sid``) — GPP strings
    are not decoded here, so their presence is read as "no personalised ads"."""
    regs = request.regs
    if regs is None:
        return True
    extra = regs.model_extra.get("ext") if regs.model_extra else None
    gdpr = regs.gdpr if regs.gdpr is not None else (extra.get("gdpr") if isinstance(extra, dict) else None)
    if regs.coppa == 1 or regs.gpp_sid or regs.gpp:
        return False
    if gdpr == 1:
        return bool(request.user and request.user.consent)
    return True


def currency_ok(request: BidRequest) -> bool:
    """We bid in CNY only: a request allowing other currencies only, or floors in another currency, gets no bid."""
    if request.cur and CURRENCY not in request.cur:
        return False
    return all(imp.bidfloorcur == CURRENCY or imp.bidfloor == 0 for imp in request.imp)


def to_ad_request(request: BidRequest, imp: Imp) -> AdRequest:
    """One impression of a bid request as an adpilot :class:`AdRequest` (user id still raw here). Without
    permission to personalise, the user id is dropped too: no profile, no frequency history for that user."""
    personalised = personalisation_allowed(request)
    user = request.user if personalised else None
    user_id = (user.buyeruid or user.id) if user else None
    device = request.device
    geo = device.geo if device else None
    where = request.site or request.app
    page = request.site.page if request.site else (request.app.bundle if request.app else None)
    return AdRequest(
        request_id=f"{request.id}:{imp.id}",
        user_id=user_id,
        slot=imp.tagid or ("native" if imp.native else "banner"),
        page=page,
        query=where.keywords if where else None,
        device=_DEVICE_TYPES.get(device.devicetype or 0) if device else None,
        geo=(geo.region or geo.country) if geo else None,
        floor_price=imp.bidfloor,
        consent_personalisation=personalised,
        block_domains=list(request.badv),
        block_categories=list(request.bcat),
    )


def to_bid_response(request: BidRequest, decisions: list[tuple[Imp, Decision]], nurl_base: str,
                    campaigns: CampaignTable) -> BidResponse | None:
    """Placed ads as OpenRTB bids priced at their eCPM (exchanges expect CPM); ``None`` when nothing was placed."""
    bids = [
        Bid(
            id=placed.token[:32],
            impid=imp.id,
            price=round(placed.ecpm, 4),
            adm=placed.text or "",
            crid=placed.creative_id or placed.ad_id,
            cid=placed.campaign_id,
            adid=placed.ad_id,
            adomain=_domains(campaigns, placed.campaign_id),
            nurl=f"{nurl_base}?t={placed.token}&price=${{AUCTION_PRICE}}",
        )
        for imp, decision in decisions
        for placed in decision.ads[:1]
    ]
    if not bids:
        return None
    return BidResponse(id=request.id, seatbid=[SeatBid(bid=bids)], bidid=request.id)


def _domains(campaigns: CampaignTable, campaign_id: str) -> list[str]:
    """``adomain``: the advertiser domain of the campaign, as the snapshot that placed the ad knows it."""
    row = campaigns.index.get(campaign_id)
    domain = None if row is None else campaigns.domain[row]
    return [domain] if domain else []
