"""ES256 compact JWS (RFC 7515), the only algorithm this server signs or accepts.

Used for ``X-BoB-AuthToken`` JWTs and for signed manifests. The algorithm is never taken from
the token: a header whose ``alg`` is anything but ``"ES256"`` (``none``, ``HS256`` with a public
key as secret, ``es256``...) is refused before any key is looked up, and so is a ``crit``
header this code does not understand.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from mtb.keys import es256_sign, es256_verify
from mtb import MtbFormatError, b64url_decode, b64url_encode

MAX_TOKEN_CHARS = 8 * 1024

KeyLookup = Callable[[dict[str, Any], dict[str, Any]], "ec.EllipticCurvePublicKey | None"]


class JwsError(ValueError):
    """A token that is malformed, unsigned, signed with another algorithm or not verifiable."""

    def __init__(self, message: str, reason: str = "invalid"):
        super().__init__(message)
        self.reason = reason  # invalid | alg | unknown-key | signature


def _json_b64(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def sign(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    header = {**header, "alg": "ES256"}
    signing_input = f"{_json_b64(header)}.{_json_b64(claims)}"
    return f"{signing_input}.{b64url_encode(es256_sign(key, signing_input.encode('ascii')))}"


def _segment(text: str, what: str) -> bytes:
    if "=" in text:
        raise JwsError(f"{what} is padded; compact JWS uses unpadded base64url")
    try:
        return b64url_decode(text)
    except MtbFormatError as exc:
        raise JwsError(f"{what} is not base64url") from exc


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise JwsError(f"{what} is not JSON") from exc
    except RecursionError:  # a token is not a request body: it is refused as the token it is
        raise JwsError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise JwsError(f"{what} is not a JSON object")
    return value


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and parse; checks the shape and ``alg`` but not the signature."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise JwsError("token missing or too long")
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise JwsError("not a compact JWS (three dot-separated parts)")
    header = _object(_segment(parts[0], "header"), "header")
    alg = header.get("alg")
    if alg != "ES256":
        raise JwsError(f"alg {alg!r} is not accepted (only ES256)", "alg")
    if "crit" in header:
        raise JwsError("'crit' header parameters are not supported")
    if not parts[2]:
        raise JwsError("token is unsigned", "alg")
    claims = _object(_segment(parts[1], "payload"), "payload")
    signature = _segment(parts[2], "signature")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def verify(token: str, key_for: KeyLookup) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token whose ES256 signature verifies with ``key_for(header, claims)``."""
    header, claims, signing_input, signature = unverified(token)
    key = key_for(header, claims)
    if key is None:
        raise JwsError(f"unknown signing key {header.get('kid')!r}", "unknown-key")
    if not es256_verify(key, signing_input, signature):
        raise JwsError("signature does not verify", "signature")
    return header, claims
