"""Signed tracking tokens: what an impression, click or conversion event must carry to be believed.

A token is ``base64url(payload) "." base64url(HMAC-SHA256(secret, payload)[:16])``; the payload is compact JSON
with the request, user, ad, campaign, creative, the price per click, the issue time and the expiry. Anyone can
read a token, nobody without the secret can make or alter one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

import orjson

from adpilot.errors import UserError


class TokenError(UserError):
    """A token that is malformed, forged, or expired."""


@dataclass(frozen=True)
class TokenClaims:
    """What a token vouches for. ``price`` is the cost per click reserved when the ad was served."""

    request_id: str
    user_id: str | None
    ad_id: str
    campaign_id: str
    creative_id: str | None
    slot: str
    price: float
    issued_at: float
    expires_at: float

    @property
    def token_id(self) -> str:
        """Unique per placed ad: the reservation id and the de-duplication key."""
        return f"{self.request_id}/{self.ad_id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs and verifies :class:`TokenClaims` with one secret.

    >>> s = TokenSigner("k" * 16)
    >>> t = s.sign(TokenClaims("r1", "u1", "a1", "c1", None, "home", 0.5, 0.0, 60.0))
    >>> s.verify(t, now=30.0).ad_id
    'a1'
    >>> s.verify(t[:-2] + "AA", now=30.0)
    Traceback (most recent call last):
    ...
    adpilot.deliver.tokens.TokenError: token signature does not match (forged or altered)
    """

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("`secret` must be a non-empty string")
        self._keyed = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)  # keyed once, copied per token

    def _mac(self, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(payload)
        return mac.digest()[:16]

    def sign(self, claims: TokenClaims) -> str:
        payload = orjson.dumps(claims, option=orjson.OPT_SORT_KEYS)  # compact UTF-8 JSON
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: float, grace_s: float = 0.0) -> TokenClaims:
        """The claims of a genuine token still valid at ``now`` (``grace_s`` extends it, e.g. for conversions)."""
        try:
            body, mac = token.split(".")
            payload, signature = _unb64(body), _unb64(mac)
        except (ValueError, AttributeError) as error:
            raise TokenError("token is malformed") from error
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise TokenError("token signature does not match (forged or altered)")
        try:
            claims = TokenClaims(**json.loads(payload))
        except (ValueError, TypeError) as error:
            raise TokenError("token payload is malformed") from error
        if now > claims.expires_at + grace_s:
            raise TokenError(f"token expired at {claims.expires_at:.0f} (now {now:.0f})")
        return claims
