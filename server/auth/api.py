"""``GET {base}/auth/{entityId}``: a TLS client certificate (BoB's way) or HTTP Basic
credentials for an ``X-BoB-AuthToken``."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from .. import jws
from ..context import ctx_of
from ..endpoint import BASIC, Api, Param, Reply
from ..errors import ApiError, json_response
from ..store import Credential
from .certs import CertSubject, may_act_as, peer_subject
from .middleware import check_not_blocked, check_rate
from .passwords import BASIC_CHALLENGE, parse_basic, verify_password
from .tokens import issue_token

api = Api("Auth API")


class JwtResponse(BaseModel):
    jwtCompact: str
    header: dict[str, Any] = Field(description="the JWT's header, decoded (alg, typ, kid)")
    payload: dict[str, Any] = Field(description="the JWT's claims, decoded (iss, sub, iat, exp, bobAuthZ)")


def token_answer(ctx: Any, cred: Credential) -> web.Response:
    """A fresh token for a credential, with its header and claims beside it as BoB clients read them."""
    token = issue_token(ctx.keyring, cred.entity_id, cred.role, datetime.now(timezone.utc),
                        ctx.config.token_lifetime_seconds)
    header, claims, _, _ = jws.unverified(token)
    return json_response({"jwtCompact": token, "header": header, "payload": claims},
                         headers={"Cache-Control": "no-store"})


async def certificate_login(request: web.Request, entity_id: str, subject: CertSubject) -> web.Response:
    """The caller proved who it is with a certificate the client CA issued: telling it that an
    entity does not exist (404) or is not its own (403) gives nothing away to a stranger."""
    ctx = ctx_of(request)
    cred = await ctx.run(ctx.store.get_credential, entity_id)
    if cred is None:
        raise ApiError(404, f"no entity {entity_id!r}", code="unknown_entity")
    if not may_act_as(cred, subject):
        raise ApiError(403, f"certificate {subject.text!r} may not act as {entity_id!r}", code="certificate_not_allowed")
    check_rate(ctx, entity_id, cred.role)
    return token_answer(ctx, cred)


@api.endpoint("GET", "/auth/{entityId}", op="getAuthToken", roles=BASIC,
              summary="Trade a TLS client certificate, or HTTP Basic credentials (username = entityId), for an "
                      "X-BoB-AuthToken JWT (ES256)",
              description="With the server's TLS and a client CA, a client certificate is BoB's login: its subject "
                          "must be the one bound to the entity (credentials add --cert-subject), or name the entity "
                          "as its common name; then an unknown entity is a 404 and another's a 403. Without a "
                          "certificate, or with an Authorization header, HTTP Basic: a wrong password and an unknown "
                          "entity are one 401, so that strangers cannot list the entities.",
              params=(Param("entityId", "path", {"type": "string"}),),
              replies={200: Reply(JwtResponse), 401: "Missing or invalid credentials",
                       403: "The certificate may not act as this entity",
                       404: "No such entity (certificate login only)"})
async def get_auth(request: web.Request) -> web.Response:
    """Failed logins are counted per client address, successful ones per credential: someone
    guessing a device's password slows down only themselves, never the device's own calls."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    if "Authorization" not in request.headers:
        subject = peer_subject(request)
        if subject is not None:
            return await certificate_login(request, entity_id, subject)
    failures = f"login-failures:{request.remote or '?'}"
    check_not_blocked(ctx, failures)  # before the (deliberately slow) password hash
    user, password = parse_basic(request.headers.get("Authorization"))
    cred = await ctx.run(ctx.store.get_credential, entity_id) if user == entity_id else None
    ok = await asyncio.to_thread(verify_password, password, cred.password_hash if cred else None)
    if not ok or cred is None:
        check_rate(ctx, failures)
        raise ApiError(401, "invalid credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    check_rate(ctx, entity_id, cred.role)
    return token_answer(ctx, cred)
