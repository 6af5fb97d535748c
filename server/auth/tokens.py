"""``X-BoB-AuthToken``: compact JWS, ES256, header ``{"alg": "ES256", "typ": "JWT", "kid":
"<pid>:auth-1"}``, claims ``iss`` (pid as text), ``sub`` (entity id), ``iat``, ``exp``,
``bobAuthZ`` (role), optionally ``nbf``.

A token is verified against the ``authtokenPublicKeys`` of participant ``iss`` in the
participant metadata, with ``clock_skew_seconds`` of slack on ``iat``/``nbf``/``exp``. The
time claims must be whole numbers of seconds between 2000 and 2100 (``Infinity``, ``NaN``,
``1e400`` and text are refused), and a token is honoured for at most
``max_token_lifetime_seconds`` after its ``iat``, whatever its ``exp`` says: another
participant's server chooses its own ``exp``, this server chooses how long it listens.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import jws
from ..endpoint import ROLES
from ..errors import ApiError
from ..keyring import KeyRing

TOKEN_HEADER = "X-BoB-AuthToken"
EARLIEST, LATEST = 946_684_800, 4_102_444_800  # 2000-01-01, 2100-01-01 (UTC)


@dataclass(frozen=True)
class Principal:
    sub: str
    pid: int
    role: str
    exp: int  # when the server stops honouring the token (exp, capped by the maximum life)
    key: str = ""  # the credential key: sub for our own pid, "<pid>:<sub>" for another participant

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def sees(self, record: Any) -> bool:
        """Whether a stored record (anything with a ``pid``) exists for this caller: an admin sees
        every participant's, anyone else only their own (another's is a 404, not a 403, so ids
        cannot be probed)."""
        return record is not None and (self.admin or record.pid == self.pid)


def issue_token(ring: KeyRing, sub: str, role: str, now: datetime, lifetime: int) -> str:
    iat = int(now.timestamp())
    header = {"alg": "ES256", "typ": "JWT", "kid": ring.auth_kid}
    claims = {"iss": str(ring.pid), "sub": sub, "iat": iat, "exp": iat + lifetime, "bobAuthZ": role}
    return jws.sign(ring.auth_key, header, claims)


def _invalid(message: str, code: str = "invalid_token") -> ApiError:
    return ApiError(401, f"invalid auth token: {message}" if code == "invalid_token" else message, code=code)


def seconds_claim(claims: dict[str, Any], name: str, *, required: bool) -> int | None:
    """A NumericDate claim as whole seconds within [2000, 2100), or 401."""
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"{name} must be a number of seconds")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise _invalid(f"{name} must be a whole, finite number of seconds")
        value = int(value)
    if not EARLIEST <= value < LATEST:
        raise _invalid(f"{name} is out of range")
    return value


def verify_token(token: str | None, ring: KeyRing, now: datetime, skew: int, max_lifetime: int) -> Principal:
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
        raise _invalid(str(exc)) from None
    sub, role, iss = claims.get("sub"), claims.get("bobAuthZ"), claims.get("iss")
    if not isinstance(sub, str) or not sub or len(sub) > 200 or role not in ROLES or not isinstance(iss, str) \
            or not (iss.isascii() and iss.isdigit()) or len(iss) > 18:
        raise _invalid("bad sub, iss or bobAuthZ claim")
    iat = seconds_claim(claims, "iat", required=True)
    exp = seconds_claim(claims, "exp", required=True)
    nbf = seconds_claim(claims, "nbf", required=False)
    assert iat is not None and exp is not None
    if exp <= iat:
        raise _invalid("exp is not after iat")
    t = now.timestamp()
    if iat > t + skew:
        raise _invalid("issued in the future")
    if nbf is not None and nbf > t + skew:
        raise _invalid("not valid yet (nbf)")
    honoured_until = min(exp, iat + max_lifetime)
    if t > honoured_until + skew:
        raise _invalid("auth token expired", code="token_expired")
    pid = int(iss)
    key = sub if pid == ring.pid else f"{pid}:{sub}"
    return Principal(sub=sub, pid=pid, role=role, exp=honoured_until, key=key)


class TokenCache:
    """Tokens already verified, so a device's every request does not pay an ES256 verification
    (7% of an upload): the exact token text -> its principal, kept until the server stops
    honouring it (exp, capped by the maximum life), at most ``size`` of them (the oldest
    verified goes first). A change of the participant metadata (keys added or withdrawn)
    empties it. Expiry is checked on every use."""

    def __init__(self, size: int = 10_000):
        self.size = size
        self._principals: OrderedDict[str, Principal] = OrderedDict()
        self._etag: str | None = None

    def verify(self, token: str | None, ring: KeyRing, now: datetime, skew: int, max_lifetime: int) -> Principal:
        etag = ring.metadata.etag
        if etag != self._etag:
            self._principals.clear()
            self._etag = etag
        cached = self._principals.get(token) if token else None
        if cached is not None:
            if now.timestamp() <= cached.exp + skew:
                return cached
            del self._principals[token]  # type: ignore[arg-type]
        principal = verify_token(token, ring, now, skew, max_lifetime)
        self._principals[token] = principal  # type: ignore[index]
        if len(self._principals) > self.size:
            self._principals.popitem(last=False)
        return principal
