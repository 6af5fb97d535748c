"""``GET {base}/auth/{entityId}``: HTTP Basic credentials for an ``X-BoB-AuthToken``."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web
from pydantic import BaseModel

from ..context import ctx_of
from ..endpoint import BASIC, ROLES, Api, Param, Reply
from ..errors import ApiError, json_response
from .login import check_login
from .passwords import parse_basic
from .tokens import issue_token

api = Api("Auth API")


class JwtResponse(BaseModel):
    jwtCompact: str


@api.endpoint("GET", "/auth/{entityId}", op="getAuthToken", roles=BASIC,
              summary="Trade HTTP Basic credentials (username = entityId) for an X-BoB-AuthToken JWT (ES256)",
              description="Failed logins are limited per (client address, entity): a blocked pair gets 429 "
                          "without its password being checked; a correct password for an entity that is "
                          "not itself blocked is never refused because of other clients' failures. 503 when "
                          "too many logins are being checked at once.",
              params=(Param("entityId", "path", {"type": "string"}),),
              replies={200: Reply(JwtResponse), 401: "Missing or invalid credentials",
                       403: "A console-only credential (role support) gets no token",
                       503: Reply("Error", "Too many logins in progress; retry after Retry-After seconds",
                                  headers=("Retry-After",))})
async def get_auth(request: web.Request) -> web.Response:
    """The login limits are :func:`.login.check_login`'s, shared with the console's sign-in."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    user, password = parse_basic(request.headers.get("Authorization"))
    cred = await check_login(ctx, request, entity_id, password, named=user == entity_id)
    if cred.role not in ROLES:
        raise ApiError(403, f"a {cred.role!r} credential signs in to the console only", code="wrong_role")
    token = issue_token(ctx.keyring, cred.entity_id, cred.role, datetime.now(timezone.utc),
                        ctx.config.token_lifetime_seconds)
    return json_response({"jwtCompact": token}, headers={"Cache-Control": "no-store"})
