"""API keys of the B2B API: a Key ID (UUID, the Basic-auth username) and a secret (the
password), shown once when made and stored only as a hash.

The secret is 256 random bits, so a single SHA-256 is enough to store it (a slow hash protects
human-chosen passwords from guessing; nobody guesses 256 random bits), and checking a key on
every request costs microseconds, not the tens of milliseconds scrypt would. An unknown Key ID
costs the same hash as a known one.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from .records import PERMISSIONS, ApiKey

PREFIX = "sha256$"


def hash_secret(secret: str) -> str:
    return PREFIX + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key(company_id: int, permissions: list[str] | tuple[str, ...], now: datetime,
            name: str | None = None) -> tuple[ApiKey, str]:
    """A new enabled key and its secret (the only time the secret exists in clear)."""
    unknown = set(permissions) - set(PERMISSIONS)
    if unknown:
        raise ValueError(f"unknown permissions {sorted(unknown)}; known: {', '.join(PERMISSIONS)}")
    secret = secrets.token_urlsafe(32)
    key = ApiKey(str(uuid.uuid4()), company_id, hash_secret(secret), frozenset(permissions), True, name, now)
    return key, secret


def check_secret(key: ApiKey | None, secret: str) -> bool:
    """Constant-time; False for an unknown (None) key after the same work."""
    actual = hash_secret(secret)
    expected = key.secret_hash if key is not None else PREFIX + "0" * 64
    return hmac.compare_digest(actual, expected) and key is not None


def is_key_id(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
