"""Passwords of HTTP Basic credentials: scrypt hashes, compared in constant time.

Stored as ``scrypt$<n>$<r>$<p>$<salt b64url>$<hash b64url>`` (16-byte random salt); an unknown
entity costs the same hash as a known one, so timing does not tell them apart.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from mtb import MtbFormatError, b64url_decode, b64url_encode

from ..errors import ApiError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
_DUMMY_HASH: str | None = None
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="bob"'}


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
        raise ApiError(401, "HTTP Basic credentials required", code="missing_credentials", headers=BASIC_CHALLENGE)
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        user, sep, password = "", "", ""
    if not sep:
        raise ApiError(401, "malformed HTTP Basic credentials", code="invalid_credentials", headers=BASIC_CHALLENGE)
    return user, password
