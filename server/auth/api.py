"""``GET {base}/auth/{entityId}``: HTTP Basic credentials for an ``X-BoB-AuthToken``."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from aiohttp import web
from pydantic import BaseModel

from ..clients import client_address
from ..context import ctx_of
from ..endpoint import BASIC, Api, Param, Reply
from ..errors import ApiError, json_response
from .middleware import check_not_blocked, check_rate, take_slot
from .passwords import BASIC_CHALLENGE, parse_basic
from .tokens import issue_token

api = Api("Auth API")
log = logging.getLogger("server.auth")


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
                       503: Reply("Error", "Too many logins in progress; retry after Retry-After seconds",
                                  headers=("Retry-After",))})
async def get_auth(request: web.Request) -> web.Response:
    """The slot in the login limiter is taken before the password is hashed, so a burst of
    concurrent guesses gets exactly the budget and the rest 429 without costing a hash; a
    success gives the pair's failures back."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    user, password = parse_basic(request.headers.get("Authorization"))
    client = client_address(request, ctx.proxies)
    pair = f"login:{client}:{entity_id}"
    check_not_blocked(ctx.limiter, entity_id)  # the credential itself is over its request rate
    take_slot(ctx.login_limiter, pair, "too many failed logins")
    try:
        cred = await ctx.run(ctx.store.get_credential, entity_id) if user == entity_id else None
        verdict = await ctx.hasher.verify(password, cred.password_hash if cred else None)
    except ApiError as busy:  # 503: nothing was checked, so the attempt does not count
        if ctx.login_limiter is not None:
            ctx.login_limiter.release(pair)
        raise busy
    if not verdict.ok or cred is None:
        log.info("failed login for %r from %s", entity_id[:200], client)
        raise ApiError(401, "invalid credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    if ctx.login_limiter is not None:
        ctx.login_limiter.forget(pair)
    if verdict.rehash:  # weaker than the configured parameters (or the first release's scrypt)
        stronger = await ctx.hasher.hash(password)
        await ctx.run(ctx.store.set_password_hash, entity_id, stronger, cred.password_hash)
    check_rate(ctx, entity_id, cred.role)
    token = issue_token(ctx.keyring, cred.entity_id, cred.role, datetime.now(timezone.utc),
                        ctx.config.token_lifetime_seconds)
    return json_response({"jwtCompact": token}, headers={"Cache-Control": "no-store"})
