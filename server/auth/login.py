"""Checking a password, with the login limits, for every way in: HTTP Basic at
``GET {base}/auth/{entityId}`` and the console's sign-in form.

Failed logins are limited per (client address, entity): the slot in the login limiter is
taken before the password is hashed, so a burst of concurrent guesses gets exactly the budget
and the rest 429 without costing a hash; a success gives the pair's failures back; a hash
weaker than the configured parameters is replaced at a successful login.
"""
from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ..clients import client_address
from ..errors import ApiError
from ..store import Credential
from .middleware import check_not_blocked, check_rate, take_slot
from .passwords import BASIC_CHALLENGE

log = logging.getLogger("server.auth")


async def check_login(ctx: Any, request: web.Request, entity_id: str, password: str, *,
                      named: bool = True) -> Credential:
    """The credential ``entity_id`` when ``password`` is its password; else 401 (429 when the
    pair is blocked, 503 when too many hashes are running). ``named=False``: the request names
    another entity than ``entity_id`` (a Basic user that is not the path's): the same hash is
    burnt and it fails."""
    client = client_address(request, ctx.proxies)
    pair = f"login:{client}:{entity_id}"
    await check_not_blocked(ctx.limiter, entity_id)  # the credential itself is over its request rate
    await take_slot(ctx.login_limiter, pair, "too many failed logins")
    try:
        cred = await ctx.run(ctx.store.get_credential, entity_id) if named else None
        verdict = await ctx.hasher.verify(password, cred.password_hash if cred else None)
    except ApiError as busy:  # 503: nothing was checked, so the attempt does not count
        if ctx.login_limiter is not None:
            await ctx.login_limiter.release(pair)
        raise busy
    if not verdict.ok or cred is None:
        log.info("failed login for %r from %s", entity_id[:200], client)
        raise ApiError(401, "invalid credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    if ctx.login_limiter is not None:
        await ctx.login_limiter.forget(pair)
    if verdict.rehash:  # weaker than the configured parameters (or the first release's scrypt)
        stronger = await ctx.hasher.hash(password)
        await ctx.run(ctx.store.set_password_hash, entity_id, stronger, cred.password_hash)
    await check_rate(ctx, entity_id, cred.role)
    return cred
