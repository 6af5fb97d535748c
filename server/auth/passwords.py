"""Passwords of HTTP Basic credentials: argon2id (argon2-cffi), compared in constant time.

Why argon2id rather than scrypt: it is the first choice of the OWASP password storage guide
and RFC 9106, and argon2-cffi (maintained, the reference C code) stores its parameters in the
PHC string it writes (``$argon2id$v=19$m=65536,t=3,p=4$salt$hash``), so telling that a stored
hash is weaker than the configured parameters, and re-hashing it at the next login, is one call.
Hashes of the first release (``scrypt$n$r$p$salt$hash``) still verify, and are re-hashed as
argon2id at the next successful login.

An unknown entity costs the same hash as a known one, so timing does not tell them apart.
Every hash runs in :class:`HashPool`, never on the event loop nor in its default executor.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2

from mtb import MtbFormatError, b64url_decode

from ..config import PasswordHashConfig
from ..errors import ApiError

MIN_LENGTH = 12
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="bob"'}
_LEGACY_MAXMEM = 256 * 1024 * 1024


class WeakPassword(ValueError):
    pass


def generate_password() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 bits


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")


def _hasher(params: PasswordHashConfig) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_kib,
                                 parallelism=params.parallelism, type=argon2.Type.ID)


def hash_password(password: str, params: PasswordHashConfig | None = None) -> str:
    return _hasher(params or PasswordHashConfig()).hash(password)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rehash: bool = False  # the stored hash is not argon2id with the configured parameters


def verify_password(password: str, stored: str | None, params: PasswordHashConfig | None = None) -> Verdict:
    """Constant-time check; ``stored=None`` (unknown entity) burns the same work and fails."""
    params = params or PasswordHashConfig()
    hasher = _hasher(params)
    if stored is None:
        try:
            hasher.verify(_dummy_hash(params), password)
        except argon2.exceptions.VerificationError:
            pass
        return Verdict(False)
    if stored.startswith("scrypt$"):
        return Verdict(_verify_scrypt(password, stored), rehash=True)
    try:
        hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return Verdict(False)
    return Verdict(True, rehash=hasher.check_needs_rehash(stored))


_DUMMIES: dict[tuple[int, int, int], str] = {}


def _dummy_hash(params: PasswordHashConfig) -> str:
    key = (params.time_cost, params.memory_kib, params.parallelism)
    if key not in _DUMMIES:
        _DUMMIES[key] = hash_password(secrets.token_urlsafe(18), params)
    return _DUMMIES[key]


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = b64url_decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=b64url_decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected), maxmem=_LEGACY_MAXMEM)
    except (ValueError, MtbFormatError):
        return False
    return hmac.compare_digest(actual, expected)


class HashPool:
    """The password hashes of logins, in their own bounded pool of threads.

    ``workers`` hashes run at once (argon2 releases the GIL); at most ``queue`` more wait. A
    login beyond that gets 503 at once instead of queueing without bound, and the feeds a
    device polls never wait behind a login flood (they run on the event loop and the default
    executor, which no hash touches).
    """

    def __init__(self, params: PasswordHashConfig):
        self.params = params
        self.queue = params.queue
        self.pending = 0  # hashes submitted and not finished (only the event loop changes it)
        self.done = 0
        self._executor = ThreadPoolExecutor(max_workers=params.workers, thread_name_prefix="password-hash")

    def _admit(self) -> None:
        if self.pending >= self.params.workers + self.queue:
            raise ApiError(503, "too many logins in progress; retry shortly", code="busy",
                           headers={"Retry-After": "1"})

    async def _run(self, fn, *args):  # type: ignore[no-untyped-def]
        self._admit()
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.pending -= 1
            self.done += 1

    async def verify(self, password: str, stored: str | None) -> Verdict:
        return await self._run(verify_password, password, stored, self.params)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password, self.params)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


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
