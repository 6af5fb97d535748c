"""Token API handlers: the tokens (phones, cards) this server knows, and which are revoked.

A token becomes known when tickets are issued bound to it (``POST /ticket`` with
``tokenPublicKey``) or when an operator registers it with its serial (``python -m server
tokens add``). Revoking a token is putting it on the deny list (``python -m server tokens
revoke``): the revocation list is the deny list's token entries, and ``revoked`` is whether the
newest deny entry of the token is in force, so the two views cannot disagree.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from mtb.timeutil import format_extended

from ..context import ctx_of
from ..endpoint import Api, Param, Reply
from ..errors import ApiError, field_error, json_response
from ..params import FEED_MAX, feed_page, feed_params, param, q_int
from ..store import TokenRecord

api = Api("Token API", "BoB Token API 1.4: token information and the revocation list")

READERS = ("val", "ins", "pos", "tvm")
TOKEN_ID = Param("tokenId", "path", {"type": "string"}, "RFC 7638 SHA-256 thumbprint of the token's public key")


class PublicJwk(BaseModel):
    model_config = ConfigDict(extra="allow")
    kty: str
    kid: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None
    n: str | None = None
    e: str | None = None


class TokenInformation(BaseModel):
    serial: int | None = Field(None, description="absent when the token was registered without one")
    publicKey: PublicJwk
    revoked: bool
    thumbprint: str
    pid: int = Field(description="the token issuer's participant id")


class RevocationEntry(BaseModel):
    entryId: int = Field(description="ever increasing (the deny list's blacklistEntryId)")
    thumbprint: str
    expire: str = Field(json_schema_extra={"format": "date-time"})


class RevocationStatus(BaseModel):
    revoked: bool


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _information(request: web.Request, token: TokenRecord) -> dict[str, Any]:
    ctx = ctx_of(request)
    revoked = await ctx.run(lambda: ctx.store.denied([("token", token.token_id)], _now())) is not None
    info: dict[str, Any] = {"publicKey": token.public_key, "revoked": revoked, "thumbprint": token.token_id,
                            "pid": token.pid}
    if token.serial is not None:
        info["serial"] = token.serial
    return info


def _required_int(request: web.Request, name: str) -> int:
    value = q_int(request, name, None, 0, 2 ** 62)
    if value is None:
        raise field_error(name, "is required", status=400, code="missing_parameter")
    return value


@api.endpoint("GET", "/token", op="getMultipleTokenInformation", roles=READERS,
              summary="The tokens an issuer gave a serial number (the public key from the serial)",
              params=(param("pid", "query", {"type": "integer", "minimum": 0}, "the token issuer", required=True),
                      param("serial", "query", {"type": "integer", "minimum": 0}, required=True)),
              replies={200: Reply(list[TokenInformation], "Matching tokens; [] when none")})
async def get_tokens(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    pid, serial = _required_int(request, "pid"), _required_int(request, "serial")
    found = await ctx.run(ctx.store.tokens_by_serial, pid, serial)
    return json_response([await _information(request, token) for token in found])


@api.endpoint("GET", "/token/revocationlist", op="getRevocationList", roles=READERS,
              summary="Revoked tokens: the deny list's token entries with id > revocationListStartEntryId",
              description="The same entries as the deny list (GET /blacklist) that name a token, under the same "
                          "ids; an entry whose expire has passed lifts the revocation. Pages like the deny list: "
                          f"100 a page unless asked, up to {FEED_MAX} for val and ins.",
              params=feed_params("revocationListStartEntryId"),
              replies={200: Reply(list[RevocationEntry], headers=("X-Total-Count", "Link"))})
async def get_revocation_list(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return await feed_page(request, "revocationListStartEntryId", lambda w: ctx.run(
        ctx.store.token_revocations_page, w.after, offset=w.offset, limit=w.limit, sort_order=w.sort_order),
        lambda e: {"entryId": e.entry_id, "thumbprint": e.token_id, "expire": format_extended(e.expire)})


async def _token(request: web.Request) -> TokenRecord:
    ctx = ctx_of(request)
    token_id = request.match_info["tokenId"]
    token = await ctx.run(ctx.store.get_token, token_id)
    if token is None:
        raise ApiError(404, f"token {token_id!r} not known", code="token_not_found")
    return token


@api.endpoint("GET", "/token/{tokenId}", op="getTokenInformation", roles=READERS, summary="One token",
              params=(TOKEN_ID,), replies={200: Reply(TokenInformation), 404: "Token not known"})
async def get_token(request: web.Request) -> web.Response:
    return json_response(await _information(request, await _token(request)))


@api.endpoint("GET", "/token/{tokenId}/revoked", op="getRevocationStatus", roles=READERS,
              summary="Whether a token is revoked", params=(TOKEN_ID,),
              replies={200: Reply(RevocationStatus), 404: "Token not known"})
async def get_revoked(request: web.Request) -> web.Response:
    info = await _information(request, await _token(request))
    return json_response({"revoked": info["revoked"]})
