"""Authentication and authorisation.

* Credentials (HTTP Basic, username = entity id) are stored as
  ``scrypt$<n>$<r>$<p>$<salt b64url>$<hash b64url>`` (hashlib.scrypt, 16-byte random salt),
  compared in constant time; an unknown entity costs the same hash as a known one.
* ``GET {base}/auth/{entityId}`` trades them for an ``X-BoB-AuthToken``: a compact JWS, ES256,
  header ``{"alg": "ES256", "typ": "JWT", "kid": "<pid>:auth-1"}``, claims ``iss`` (pid as
  text), ``sub`` (entity id), ``iat``, ``exp``, ``bobAuthZ`` (role).
* Every other route (except the public OpenAPI document) wants that header. It is verified
  against the ``authtokenPublicKeys`` of participant ``iss`` in the participant metadata,
  with ``clock_skew_seconds`` of slack on ``iat``/``exp``. A token this server issued (``iss``
  = our pid) also needs its credential to still exist with the same role, so removing a
  credential cuts its tokens off at once.
* Then the rate limit (per ``sub``), then the route's role list (:data:`ROLES` below).
  401 = no/bad/expired token; 403 = good token, wrong role; 429 = over the limit.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from mtb import MtbFormatError, b64url_decode, b64url_encode

from . import jws
from .context import PRINCIPAL
from .errors import ApiError, Handler
from .keyring import KeyRing

ROLES = ("val", "ins", "tvm", "pos", "admin")
TOKEN_HEADER = "X-BoB-AuthToken"

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_DUMMY_HASH: str | None = None


# --- passwords --------------------------------------------------------------------------------

def generate_password() -> str:
    return secrets.token_urlsafe(18)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=64 * 1024 * 1024)
    return f"scrypt${n}${r}${p}${b64url_encode(salt)}${b64url_encode(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; ``stored=None`` (unknown entity) burns the same work and fails."""
    global _DUMMY_HASH
    if stored is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password("dummy")
        stored, known = _DUMMY_HASH, False
    else:
        known = True
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = b64url_decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=b64url_decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, MtbFormatError):
        return False
    return hmac.compare_digest(actual, expected) and known


def parse_basic(header: str | None) -> tuple[str, str]:
    if not header or not header.lower().startswith("basic "):
        raise ApiError(401, "HTTP Basic credentials required", code="missing_credentials",
                           headers={"WWW-Authenticate": 'Basic realm="bob"'})
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        user, sep, password = "", "", ""
    if not sep:
        raise ApiError(401, "malformed HTTP Basic credentials", code="invalid_credentials",
                           headers={"WWW-Authenticate": 'Basic realm="bob"'})
    return user, password


# --- tokens -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Principal:
    sub: str
    pid: int
    role: str
    exp: int
    key: str = ""  # the credential key: sub for our own pid, "<pid>:<sub>" for another participant

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def issue_token(ring: KeyRing, sub: str, role: str, now: datetime, lifetime: int) -> str:
    iat = int(now.timestamp())
    header = {"alg": "ES256", "typ": "JWT", "kid": ring.auth_kid}
    claims = {"iss": str(ring.pid), "sub": sub, "iat": iat, "exp": iat + lifetime, "bobAuthZ": role}
    return jws.sign(ring.auth_key, header, claims)


def verify_token(token: str | None, ring: KeyRing, now: datetime, skew: int) -> Principal:
    if not token:
        raise ApiError(401, f"{TOKEN_HEADER} header required", code="missing_token")

    def key_for(header: dict[str, Any], claims: dict[str, Any]) -> Any:
        iss, kid = claims.get("iss"), header.get("kid")
        if not isinstance(iss, str) or not isinstance(kid, str):
            return None
        return ring.auth_public_key(iss, kid)

    try:
        _, claims = jws.verify(token, key_for)
    except jws.JwsError as exc:
        raise ApiError(401, f"invalid auth token: {exc}", code="invalid_token") from None
    sub, role, iss = claims.get("sub"), claims.get("bobAuthZ"), claims.get("iss")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(sub, str) or not sub or role not in ROLES or not isinstance(iss, str) or not iss.isdigit():
        raise ApiError(401, "invalid auth token: bad sub, iss or bobAuthZ claim", code="invalid_token")
    if not _number(exp) or not _number(iat):
        raise ApiError(401, "invalid auth token: iat and exp must be numbers", code="invalid_token")
    t = now.timestamp()
    if t > exp + skew:
        raise ApiError(401, "auth token expired", code="token_expired")
    if iat > t + skew:
        raise ApiError(401, "auth token issued in the future", code="invalid_token")
    key = sub if int(iss) == ring.pid else f"{int(iss)}:{sub}"
    return Principal(sub=sub, pid=int(iss), role=role, exp=int(exp), key=key)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- middleware -------------------------------------------------------------------------------

PUBLIC = "public"
BASIC = "basic"


def allow(*roles: str) -> Callable[[Handler], Handler]:
    """Mark a handler with the roles that may call it (``admin`` is always added)."""
    unknown = set(roles) - set(ROLES) - {PUBLIC, BASIC}
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def mark(handler: Handler) -> Handler:
        handler.roles = tuple(roles) if roles[0] in (PUBLIC, BASIC) else tuple(dict.fromkeys((*roles, "admin")))  # type: ignore[attr-defined]
        return handler

    return mark


def roles_of(handler: Any) -> tuple[str, ...]:
    return getattr(handler, "roles", ("admin",))


def auth_middleware(ctx: Any) -> Any:
    """``ctx`` is the app context (config, keyring, limiter, run)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.handler
        roles = roles_of(route_handler)
        if request.match_info.http_exception is not None or roles[0] in (PUBLIC, BASIC):
            return await handler(request)  # 404/405, public document, or Basic (checked in the handler)
        now = datetime.now(timezone.utc)
        principal = verify_token(request.headers.get(TOKEN_HEADER), ctx.keyring, now, ctx.config.clock_skew_seconds)
        if principal.pid == ctx.config.pid:
            cred = await ctx.run(ctx.store.get_credential, principal.sub)
            if cred is None or cred.role != principal.role:
                raise ApiError(401, "the credential behind this token was removed or changed", code="invalid_token")
        check_rate(ctx, principal.key)
        if principal.role not in roles:
            raise ApiError(403, f"role {principal.role!r} may not call this endpoint (allowed: {', '.join(roles)})",
                            code="wrong_role")
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware


def check_not_blocked(ctx: Any, key: str) -> None:
    wait = ctx.limiter.blocked(key) if ctx.limiter is not None else None
    if wait is not None:
        raise ApiError(429, f"too many failed attempts; retry after {wait} s", headers={"Retry-After": str(wait)})


def check_rate(ctx: Any, key: str) -> None:
    if ctx.limiter is None:
        return
    wait = ctx.limiter.hit(key)
    if wait is not None:
        raise ApiError(429, f"rate limit exceeded for {key!r}; retry after {wait} s",
                              headers={"Retry-After": str(wait)})
