"""Signed manifests: the product side's authorisation to issue tickets of one product.

``POST /manifest`` (the Product API) answers ``{"manifest": base64url(JWS), ...}``, where JWS is
a compact JWS (ES256) signed with the participant's issuer key; header
``{"alg": "ES256", "typ": "bob-manifest+jwt", "kid": "<pid>:issuer-1"}``, claims::

    {"manifestId", "iss": "<pid>", "pid": <pid>, "iat", "exp",          # exp: iat + 1 h
     "latestStart",                                                  # unix seconds
     "items": [{"product": {"productId", "category"?}, "fare": {amount, currency, vatAmount, vatPercent},
                "validitySeconds", "count", "zones"?, "modes"?, "stopAreas"?,
                "mtbTemplate": {"c_md": [{"p_cid": productId}], "zon"?, "mot"?, "sa"?, "cat"?}}]}

A product set of several products is several items; at most 20 tickets in all. Claims of the
first release (one product's members at the top level, no ``items``) read as one item.

``POST /ticket`` verifies it against the ``mtbPublicKeys`` of participant ``pid`` in the
participant metadata. Unknown participant or key, any ``alg`` but ES256 (``none`` too), a
bad signature, an expired or malformed manifest: :func:`manifest_error`, a 400 with a JSON body.
A manifest issues tickets once (the store refuses a second issue from the same manifestId).
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mtb import MtbFormatError, b64url_decode, b64url_encode

from .. import jws
from ..errors import ApiError
from ..keyring import KeyRing
from ..models import Fare

TYP = "bob-manifest+jwt"


def manifest_error(message: str, *, code: str = "invalid_manifest", details: list[dict] | None = None) -> ApiError:
    """A manifest the server cannot take is a 400 (the seed's answer), with a precise code."""
    return ApiError(400, message, code=code, details=details)


class Product(BaseModel):
    model_config = ConfigDict(extra="ignore")
    productId: str
    category: str | None = None


MAX_TICKETS = 20  # a manifest signed elsewhere still cannot mint thousands


class Item(BaseModel):
    """``count`` tickets of one product: what each ticket's MTB and record say."""

    model_config = ConfigDict(extra="ignore")

    product: Product
    fare: Fare
    validitySeconds: int = Field(ge=60, le=400 * 86400)
    count: int = Field(1, ge=1, le=MAX_TICKETS)
    zones: list[str] | None = None
    modes: list[str] | None = None
    stopAreas: list[str] | None = None

    def template(self) -> dict[str, Any]:
        """The MTB fields its tickets get (``mtbTemplate`` in the claims, for the record)."""
        template: dict[str, Any] = {"c_md": [{"p_cid": self.product.productId}]}
        for key, value in (("zon", self.zones), ("mot", self.modes), ("sa", self.stopAreas),
                           ("cat", self.product.category)):
            if value is not None:
                template[key] = value
        return template


class Manifest(BaseModel):
    """Verified manifest claims: the product set's items (a manifest of the first release, one
    product at the top level, reads as one item)."""

    model_config = ConfigDict(extra="ignore")

    manifestId: str
    pid: int
    iat: int
    exp: int
    latestStart: int
    items: list[Item] = Field(min_length=1, max_length=MAX_TICKETS)

    @model_validator(mode="before")
    @classmethod
    def _one_product(cls, claims: Any) -> Any:
        if isinstance(claims, dict) and "items" not in claims:
            return {**claims, "items": [claims]}
        return claims

    @model_validator(mode="after")
    def _bounded(self) -> "Manifest":
        if sum(item.count for item in self.items) > MAX_TICKETS:
            raise ValueError(f"a manifest issues at most {MAX_TICKETS} tickets")
        return self


START_WINDOW_SECONDS = 30 * 86400  # a ticket issued from a manifest may start this long after it


def create(ring: KeyRing, items: list[Item], now: datetime, lifetime: int) -> tuple[str, dict[str, Any]]:
    """A signed manifest for a product set: ``(base64url(JWS), claims)``."""
    iat = int(now.timestamp())
    claims = {
        "manifestId": uuid.uuid4().hex, "iss": str(ring.pid), "pid": ring.pid, "iat": iat, "exp": iat + lifetime,
        "latestStart": iat + START_WINDOW_SECONDS,
        "items": [{**item.model_dump(mode="json", exclude_none=True), "mtbTemplate": item.template()}
                  for item in items],
    }
    token = jws.sign(ring.issuer_key, {"typ": TYP, "kid": ring.issuer_kid}, claims)
    return b64url_encode(token.encode("ascii")), claims


def _token(text: str) -> str:
    """Accept base64url(JWS) (what /manifest returns) or the bare compact JWS."""
    if text.count(".") == 2:
        return text
    try:
        return b64url_decode(text).decode("ascii")
    except (MtbFormatError, UnicodeDecodeError):
        raise manifest_error("manifestMtbTemplate is neither base64url nor a compact JWS",
                            details=[{"field": "manifestMtbTemplate", "message": "not base64url"}]) from None


def verify(ring: KeyRing, text: str, now: datetime, skew: int) -> Manifest:
    token = _token(text)
    field = [{"field": "manifestMtbTemplate"}]
    try:
        header, claims, _, _ = jws.unverified(token)
    except jws.JwsError as exc:
        raise manifest_error(f"manifest: {exc}", code="bad_manifest_signature" if exc.reason == "alg" else
                            "invalid_manifest", details=[{**field[0], "message": str(exc)}]) from None
    pid, kid = claims.get("pid"), header.get("kid")
    if isinstance(pid, bool) or not isinstance(pid, (int, str)) or not str(pid).isdigit():
        raise manifest_error("manifest has no participant id", details=[{**field[0], "message": "no pid"}])
    if not ring.known_participant(str(pid)):
        raise manifest_error(f"manifest from unknown participant {pid}", code="unknown_participant",
                            details=[{**field[0], "message": f"unknown participant {pid}"}])
    try:
        jws.verify(token, lambda h, c: ring.issuer_public_key(str(pid), str(kid)))
    except jws.JwsError as exc:
        code = "unknown_key" if exc.reason == "unknown-key" else "bad_manifest_signature"
        raise manifest_error(f"manifest: {exc}", code=code, details=[{**field[0], "message": str(exc)}]) from None
    if header.get("typ") != TYP:
        raise manifest_error(f"manifest typ {header.get('typ')!r} is not {TYP!r}",
                            details=[{**field[0], "message": "wrong typ"}])
    try:
        manifest = Manifest.model_validate(claims)
    except ValidationError as exc:
        raise manifest_error(f"manifest claims are malformed: {exc.errors()[0]['msg']}",
                            details=[{**field[0], "message": "malformed claims"}]) from None
    if now.timestamp() > manifest.exp + skew:
        raise manifest_error("manifest expired", code="manifest_expired",
                            details=[{**field[0], "message": "expired"}])
    return manifest
