"""``GET {base}/auth/{entityId}``: a TLS client certificate (BoB's way) or HTTP Basic
credentials for an ``X-BoB-AuthToken``."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from .. import jws
from ..context import ctx_of
from ..endpoint import BASIC, ROLES, Api, Param, Reply
from ..errors import ApiError, json_response
from ..store import Credential
from .certs import CertSubject, may_act_as, peer_subject
from .login import check_login
from .middleware import check_rate
from .passwords import parse_basic
from .tokens import issue_token

api = Api("Auth API")


class JwtResponse(BaseModel):
    jwtCompact: str
    header: dict[str, Any] = Field(description="the JWT's header, decoded (alg, typ, kid)")
    payload: dict[str, Any] = Field(description="the JWT's claims, decoded (iss, sub, iat, exp, bobAuthZ)")


def token_answer(ctx: Any, cred: Credential) -> web.Response:
    """A fresh token for a credential, with its header and claims beside it as BoB clients read them."""
    if cred.role not in ROLES:
        raise ApiError(403, f"a {cred.role!r} credential signs in to the console only", code="wrong_role")
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
    await check_rate(ctx, entity_id, cred.role)
    return token_answer(ctx, cred)


@api.endpoint("GET", "/auth/{entityId}", op="getAuthToken", roles=BASIC,
              summary="Trade a TLS client certificate, or HTTP Basic credentials (username = entityId), for an "
                      "X-BoB-AuthToken JWT (ES256)",
              description="With the server's TLS and a client CA, a client certificate is BoB's login: its subject "
                          "must be the one bound to the entity (credentials add --cert-subject), or name the entity "
                          "as its common name; then an unknown entity is a 404 and another's a 403. Without a "
                          "certificate, or with an Authorization header, HTTP Basic: a wrong password and an unknown "
                          "entity are one 401, so that strangers cannot list the entities. Failed Basic logins are "
                          "limited per (client address, entity): a blocked pair gets 429 without its password being "
                          "checked; a correct password for an entity that is not itself blocked is never refused "
                          "because of other clients' failures. 503 when too many logins are being checked at once.",
              params=(Param("entityId", "path", {"type": "string"}),),
              replies={200: Reply(JwtResponse), 401: "Missing or invalid credentials",
                       403: "The certificate may not act as this entity; or a console-only credential (role "
                            "support), which gets no token",
                       404: "No such entity (certificate login only)",
                       503: Reply("Error", "Too many logins in progress; retry after Retry-After seconds",
                                  headers=("Retry-After",))})
async def get_auth(request: web.Request) -> web.Response:
    """The login limits are :func:`.login.check_login`'s, shared with the console's sign-in."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    if "Authorization" not in request.headers:
        subject = peer_subject(request)
        if subject is not None:
            return await certificate_login(request, entity_id, subject)
    user, password = parse_basic(request.headers.get("Authorization"))
    cred = await check_login(ctx, request, entity_id, password, named=user == entity_id)
    return token_answer(ctx, cred)
