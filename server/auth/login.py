"""Checking a password, with the login limits, for every way in: HTTP Basic at
``GET {base}/auth/{entityId}`` and the console's sign-in form.

Failed logins are counted per client address, successful ones per credential: someone
guessing a password slows down only themselves, never the credential's own calls. The
address's block is checked before the (deliberately slow) password hash.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..errors import ApiError
from ..store import Credential
from .middleware import check_not_blocked, check_rate
from .passwords import BASIC_CHALLENGE, verify_password


async def check_login(ctx: Any, remote: str | None, entity_id: str | None, password: str) -> Credential:
    """The credential ``entity_id`` when ``password`` is its password; else 401 (or 429 when
    this address failed too often). ``entity_id`` None: a name that cannot be one (burns the
    same hash and fails)."""
    failures = f"login-failures:{remote or '?'}"
    check_not_blocked(ctx, failures)
    cred = await ctx.run(ctx.store.get_credential, entity_id) if entity_id else None
    ok = await asyncio.to_thread(verify_password, password, cred.password_hash if cred else None)
    if not ok or cred is None:
        check_rate(ctx, failures)
        raise ApiError(401, "invalid credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    check_rate(ctx, cred.entity_id, cred.role)
    return cred
