"""API keys: ``X-API-Key`` (or ``Authorization: Bearer``) resolves to one advertiser; the admin key to none."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status


def presented_key(
    x_api_key: Annotated[str | None, Header(max_length=200)] = None,
    authorization: Annotated[str | None, Header(max_length=300)] = None,
) -> str:
    """The key the caller sent, from either header: 401 when there is none."""
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer ") and authorization[7:].strip():
        return authorization[7:].strip()
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key: send it in the X-API-Key header")


ApiKey = Annotated[str, Depends(presented_key)]


def current_advertiser(request: Request, key: ApiKey) -> str:
    """The advertiser owning the presented key: 401 for an unknown key."""
    advertiser_id = request.app.state.repository.advertiser_for_key(key)
    if advertiser_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key")
    return str(advertiser_id)


def require_admin(request: Request, key: ApiKey) -> None:
    """Only the operator's admin key (``ADPILOT_ADMIN_API_KEY``) passes."""
    if not hmac.compare_digest(key.encode(), request.app.state.settings.admin_api_key.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint needs the admin API key")


AdvertiserId = Annotated[str, Depends(current_advertiser)]
