"""Management routes: advertisers, campaigns, ads and creatives, each visible only to its owner's API key.

Another advertiser's object answers 404 exactly like a missing one, so that keys cannot probe for ids.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from adpilot.schema import Status
from adpilot.serve.api_schemas import (
    AdCreate,
    AdPublic,
    AdUpdate,
    AdvertiserCreate,
    AdvertiserCreated,
    AdvertiserPublic,
    CampaignCreate,
    CampaignPublic,
    CampaignReport,
    CampaignUpdate,
    CreativeCreate,
    CreativePublic,
    CreativeUpdate,
)
from adpilot.serve.auth import AdvertiserId, require_admin
from adpilot.serve.repository import Repository

router = APIRouter(prefix="/v1")


def get_repository(request: Request) -> Repository:
    repository: Repository = request.app.state.repository
    return repository


Repo = Annotated[Repository, Depends(get_repository)]


def _owned(repo: Repository, table: str, object_id: str, advertiser_id: str) -> dict[str, Any]:
    kind = table.rstrip("s")
    if not repo.owns(table, object_id, advertiser_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} '{object_id}' not found for this advertiser")
    row = repo.get(table, object_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{kind} '{object_id}' not found for this advertiser")
    return row


def _still_valid(model: type[BaseModel], row: dict[str, Any]) -> None:
    """A patched object must still pass every rule of its Create body (422 naming the field otherwise), so the
    store never holds a row that the serving snapshot would refuse to load."""
    fields = {k: v for k, v in row.items() if k in model.model_fields and v is not None and not k.endswith("_id")}
    try:
        model.model_validate(fields)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False, include_context=False)) from error


def _new_id(table: str, given: str | None, repo: Repository) -> str:
    object_id = given or f"{table[:3]}_{uuid.uuid4().hex[:12]}"
    if repo.exists(table, object_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{table.rstrip('s')} '{object_id}' already exists")
    return object_id


@router.post("/advertisers", status_code=201, dependencies=[Depends(require_admin)])
def create_advertiser(body: AdvertiserCreate, repo: Repo) -> AdvertiserCreated:
    """Register an advertiser (admin key only); the response carries its API key, shown once."""
    values = body.model_dump()
    values["advertiser_id"] = _new_id("advertisers", body.advertiser_id, repo)
    values["status"] = Status.active.value
    row, key = repo.create_advertiser(values)
    return AdvertiserCreated(advertiser=AdvertiserPublic(**row), api_key=key)


@router.get("/advertisers/me")
def read_me(advertiser_id: AdvertiserId, repo: Repo) -> AdvertiserPublic:
    row = repo.get("advertisers", advertiser_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "advertiser not found")
    return AdvertiserPublic(**row)


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignCreate, advertiser_id: AdvertiserId, repo: Repo) -> CampaignPublic:
    values = body.model_dump(mode="json")
    values["campaign_id"] = _new_id("campaigns", body.campaign_id, repo)
    values.update(advertiser_id=advertiser_id, status=Status.active.value,
                  start=body.start, end=body.end)
    repo.insert("campaigns", values)
    return CampaignPublic(**_owned(repo, "campaigns", values["campaign_id"], advertiser_id))


@router.get("/campaigns")
def list_campaigns(advertiser_id: AdvertiserId, repo: Repo) -> list[CampaignPublic]:
    return [CampaignPublic(**row) for row in repo.list_owned("campaigns", advertiser_id)]


@router.get("/campaigns/{campaign_id}")
def read_campaign(campaign_id: str, advertiser_id: AdvertiserId, repo: Repo) -> CampaignPublic:
    return CampaignPublic(**_owned(repo, "campaigns", campaign_id, advertiser_id))


@router.patch("/campaigns/{campaign_id}")
def update_campaign(campaign_id: str, body: CampaignUpdate, advertiser_id: AdvertiserId,
                    repo: Repo) -> CampaignPublic:
    current = _owned(repo, "campaigns", campaign_id, advertiser_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    _still_valid(CampaignCreate, {**current, **changes})
    for field in ("start", "end"):
        if field in changes:
            changes[field] = getattr(body, field)
    repo.update("campaigns", campaign_id, changes)
    return CampaignPublic(**_owned(repo, "campaigns", campaign_id, advertiser_id))


@router.post("/campaigns/{campaign_id}/pause")
def pause_campaign(campaign_id: str, advertiser_id: AdvertiserId, repo: Repo) -> CampaignPublic:
    _owned(repo, "campaigns", campaign_id, advertiser_id)
    repo.update("campaigns", campaign_id, {"status": Status.paused.value})
    return CampaignPublic(**_owned(repo, "campaigns", campaign_id, advertiser_id))


@router.get("/campaigns/{campaign_id}/report")
def report_campaign(campaign_id: str, advertiser_id: AdvertiserId, repo: Repo) -> CampaignReport:
    _owned(repo, "campaigns", campaign_id, advertiser_id)
    row = repo.campaign_report(campaign_id)
    impressions, clicks = int(row["impressions"]), int(row["clicks"])
    return CampaignReport(
        campaign_id=campaign_id, impressions=impressions, clicks=clicks, conversions=int(row["conversions"]),
        spend=float(row["spend"]), revenue=float(row["revenue"]),
        ctr=clicks / impressions if impressions else None,
        cvr=int(row["conversions"]) / clicks if clicks else None,
    )


@router.post("/ads", status_code=201)
def create_ad(body: AdCreate, advertiser_id: AdvertiserId, repo: Repo) -> AdPublic:
    _owned(repo, "campaigns", body.campaign_id, advertiser_id)
    values = body.model_dump()
    values["ad_id"] = _new_id("ads", body.ad_id, repo)
    values["status"] = Status.active.value
    repo.insert("ads", values)
    return AdPublic(**_owned(repo, "ads", values["ad_id"], advertiser_id))


@router.get("/ads")
def list_ads(advertiser_id: AdvertiserId, repo: Repo) -> list[AdPublic]:
    return [AdPublic(**row) for row in repo.list_owned("ads", advertiser_id)]


@router.get("/ads/{ad_id}")
def read_ad(ad_id: str, advertiser_id: AdvertiserId, repo: Repo) -> AdPublic:
    return AdPublic(**_owned(repo, "ads", ad_id, advertiser_id))


@router.patch("/ads/{ad_id}")
def update_ad(ad_id: str, body: AdUpdate, advertiser_id: AdvertiserId, repo: Repo) -> AdPublic:
    _owned(repo, "ads", ad_id, advertiser_id)
    repo.update("ads", ad_id, body.model_dump(mode="json", exclude_unset=True))
    return AdPublic(**_owned(repo, "ads", ad_id, advertiser_id))


@router.post("/creatives", status_code=201)
def create_creative(body: CreativeCreate, request: Request, advertiser_id: AdvertiserId,
                    repo: Repo) -> CreativePublic:
    _owned(repo, "ads", body.ad_id, advertiser_id)
    _check_copy(request, body.text, body.language, body.slot)
    values = body.model_dump()
    values["creative_id"] = _new_id("creatives", body.creative_id, repo)
    values.update(source="human", status=Status.active.value, scores={})
    repo.insert("creatives", values)
    return CreativePublic(**_owned(repo, "creatives", values["creative_id"], advertiser_id))


@router.get("/creatives/{creative_id}")
def read_creative(creative_id: str, advertiser_id: AdvertiserId, repo: Repo) -> CreativePublic:
    return CreativePublic(**_owned(repo, "creatives", creative_id, advertiser_id))


@router.patch("/creatives/{creative_id}")
def update_creative(creative_id: str, body: CreativeUpdate, request: Request, advertiser_id: AdvertiserId,
                    repo: Repo) -> CreativePublic:
    current = _owned(repo, "creatives", creative_id, advertiser_id)
    if body.text is not None:
        _check_copy(request, body.text, current.get("language") or "zh", current.get("slot"))
    repo.update("creatives", creative_id, body.model_dump(mode="json", exclude_unset=True))
    return CreativePublic(**_owned(repo, "creatives", creative_id, advertiser_id))


def _check_copy(request: Request, text: str, language: str, slot: str | None) -> None:
    """Advertiser-written copy meets the same advertising-law rules as generated copy: 422 naming the rule."""
    check = request.app.state.compliance
    problems = check(text, language, slot)
    if problems:
        raise HTTPException(422, f"`text` breaks advertising rules: {'; '.join(problems)}")
