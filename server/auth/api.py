"""``GET {base}/auth/{entityId}``: HTTP Basic credentials for an ``X-BoB-AuthToken``."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from aiohttp import web
from pydantic import BaseModel

from ..context import ctx_of
from ..endpoint import BASIC, Api, Param, Reply
from ..errors import ApiError, json_response
from .middleware import check_not_blocked, check_rate
from .passwords import BASIC_CHALLENGE, parse_basic, verify_password
from .tokens import issue_token

api = Api("Auth API")


class JwtResponse(BaseModel):
    jwtCompact: str


@api.endpoint("GET", "/auth/{entityId}", op="getAuthToken", roles=BASIC,
              summary="Trade HTTP Basic credentials (username = entityId) for an X-BoB-AuthToken JWT (ES256)",
              params=(Param("entityId", "path", {"type": "string"}),),
              replies={200: Reply(JwtResponse), 401: "Missing or invalid credentials"})
async def get_auth(request: web.Request) -> web.Response:
    """Failed logins are counted per client address, successful ones per credential: someone
    guessing a device's password slows down only themselves, never the device's own calls."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    failures = f"login-failures:{request.remote or '?'}"
    check_not_blocked(ctx, failures)  # before the (deliberately slow) password hash
    user, password = parse_basic(request.headers.get("Authorization"))
    cred = await ctx.run(ctx.store.get_credential, entity_id) if user == entity_id else None
    ok = await asyncio.to_thread(verify_password, password, cred.password_hash if cred else None)
    if not ok or cred is None:
        check_rate(ctx, failures)
        raise ApiError(401, "invalid credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    check_rate(ctx, entity_id, cred.role)
    token = issue_token(ctx.keyring, cred.entity_id, cred.role, datetime.now(timezone.utc),
                        ctx.config.token_lifetime_seconds)
    return json_response({"jwtCompact": token}, headers={"Cache-Control": "no-store"})
