"""Who may call what: every request but the public and HTTP Basic endpoints carries an
``X-BoB-AuthToken``; the middleware verifies it, checks that a token of this server still has
its credential (removing a credential cuts its tokens off at once) or that another
participant's token stays within what this server grants that participant (config
``participants``: its roles, never admin; only its listed entities may write), counts the
request against the caller's rate limit (every unlisted entity of a participant shares one:
it signs any ``sub`` it likes, and a fresh one per request must not mean a fresh budget), then
checks the endpoint's roles.

401 = no/bad/expired token; 403 = good token, wrong role or not granted; 429 = over the limit.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ..config import ParticipantGrant
from ..context import PRINCIPAL
from ..endpoint import Endpoint, Handler
from ..errors import ApiError
from .tokens import TOKEN_HEADER


def auth_middleware(ctx: Any) -> Any:
    """``ctx`` is the app context (config, keyring, limiter, run, endpoints by operation id)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            return await handler(request)  # 404/405: nothing to protect
        endpoint: Endpoint | None = ctx.endpoints.get(request.match_info.route.name)
        if endpoint is None or endpoint.public or endpoint.basic:
            return await handler(request)  # public document, or Basic (checked in the handler)
        now = datetime.now(timezone.utc)
        config = ctx.config
        principal = ctx.tokens.verify(request.headers.get(TOKEN_HEADER), ctx.keyring, now, config.clock_skew_seconds,
                                      config.max_token_lifetime_seconds)
        if principal.pid == config.pid:
            cred = await ctx.run(ctx.store.get_credential, principal.sub)
            if cred is None or cred.role != principal.role:
                raise ApiError(401, "the credential behind this token was removed or changed", code="invalid_token")
            budget = principal.key
        else:
            grant = config.grant_for(principal.pid)
            check_grant(grant, principal, writes=request.method not in READS)
            budget = principal.key if grant.knows(principal.sub) else f"{principal.pid}:*"
        await check_rate(ctx, budget, principal.role)
        if principal.role not in endpoint.roles:
            raise ApiError(403, f"role {principal.role!r} may not call this endpoint "
                                f"(allowed: {', '.join(endpoint.roles)})", code="wrong_role")
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware


READS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_grant(grant: ParticipantGrant, principal: Any, *, writes: bool) -> None:
    """Another participant's token: only the roles granted to it, and writes only by an entity
    listed for it (any participant can sign any sub; only a listed one is known here)."""
    if principal.role not in grant.roles:
        raise ApiError(403, f"participant {principal.pid} is not granted role {principal.role!r} on this server",
                       code="not_granted")
    if writes and not grant.knows(principal.sub):
        raise ApiError(403, f"entity {principal.sub!r} of participant {principal.pid} is not known here; "
                            "only known entities may write", code="unknown_entity")


async def check_not_blocked(limiter: Any, key: str) -> None:
    wait = await limiter.blocked(key) if limiter is not None else None
    if wait is not None:
        raise ApiError(429, f"blocked for {wait} s after too many requests", headers={"Retry-After": str(wait)})


async def take_slot(limiter: Any, key: str, what: str, role: str | None = None) -> None:
    wait = await limiter.hit(key, role) if limiter is not None else None
    if wait is not None:
        raise ApiError(429, f"{what}; retry after {wait} s", headers={"Retry-After": str(wait)})


async def check_rate(ctx: Any, key: str, role: str | None = None) -> None:
    """Count a request of credential ``key`` against its role's limit (None: the default one)."""
    await take_slot(ctx.limiter, key, f"rate limit exceeded for {key!r}", role)
