"""``X-BoB-AuthToken``: compact JWS, ES256, header ``{"alg": "ES256", "typ": "JWT", "kid":
"<pid>:auth-1"}``, claims ``iss`` (pid as text), ``sub`` (entity id), ``iat``, ``exp``,
``bobAuthZ`` (role).

A token is verified against the ``authtokenPublicKeys`` of participant ``iss`` in the
participant metadata, with ``clock_skew_seconds`` of slack on ``iat``/``exp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import jws
from ..endpoint import ROLES
from ..errors import ApiError
from ..keyring import KeyRing

TOKEN_HEADER = "X-BoB-AuthToken"


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
