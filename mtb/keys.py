"""Keys: participant metadata (BoB format), ES256 issuer keys, HS256 device keys.

The algorithm is never taken from the data: an issuer key is a P-256 key and verifies ES256
only, a device key is an HMAC-SHA-256 key. What an MTB header claims is checked against that.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .codec import MtbFormatError, b64url_decode, b64url_encode

DEVICE_KEY_BYTES = 16
ES256 = ec.ECDSA(hashes.SHA256())  # made once: cryptography's constructor runs an import on every call


class KeyMaterialError(ValueError):
    """A key or participant metadata document that cannot be used."""


# --- ES256 ------------------------------------------------------------------------------------

def generate_es256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise KeyMaterialError("the private key is not a P-256 (ES256) key")
    return key


def es256_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """Sign and return the raw r||s form (64 bytes) that MTBs and JWS carry."""
    r, s = decode_dss_signature(key.sign(data, ES256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def es256_verify(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, data, ES256)
    except InvalidSignature:
        return False
    return True


def public_jwk(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    numbers = key.public_numbers()
    return {"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
            "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big"))}


def jwk_public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from a JWK; anything else (RSA, other curves, alg != ES256) is refused."""
    if not isinstance(jwk, Mapping):
        raise KeyMaterialError(f"a key is not a JWK object: {type(jwk).__name__}")
    if not all(isinstance(jwk.get(k), str) for k in ("x", "y")):
        raise KeyMaterialError(f"key {jwk.get('kid')!r} lacks text coordinates x and y")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise KeyMaterialError(f"key {jwk.get('kid')!r} is not an EC P-256 key")
    if jwk.get("alg", "ES256") != "ES256":
        raise KeyMaterialError(f"key {jwk.get('kid')!r} is for {jwk.get('alg')!r}, not ES256")
    try:
        x = int.from_bytes(b64url_decode(jwk["x"]), "big")
        y = int.from_bytes(b64url_decode(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyMaterialError(f"key {jwk.get('kid')!r} has bad coordinates: {exc}") from exc


# --- tokens (phones, cards): public JWKs and their RFC 7638 thumbprints --------------------------

_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}
_EC_COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}


def public_token_jwk(jwk: Mapping[str, Any]) -> dict[str, str]:
    """The public members of a token's JWK (EC P-256/384/521 or RSA), checked; a private
    member (``d``, RSA primes) is refused rather than stored."""
    if not isinstance(jwk, Mapping):
        raise KeyMaterialError("a token key is not a JWK object")
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise KeyMaterialError("a token key must be kty EC or RSA")
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi")):
        raise KeyMaterialError("a token key must be public (it has private members)")
    public: dict[str, str] = {}
    for member in members:
        value = jwk.get(member)
        if not isinstance(value, str) or not value or len(value) > 2048:
            raise KeyMaterialError(f"a token key lacks {member!r}")
        public[member] = value
    try:
        if public["kty"] == "EC":
            size = _EC_COORDINATE_BYTES.get(public["crv"])
            if size is None:
                raise KeyMaterialError("a token key's crv must be P-256, P-384 or P-521")
            if any(len(b64url_decode(public[c])) != size for c in ("x", "y")):
                raise KeyMaterialError(f"a token key's coordinates are not {size} bytes")
        else:
            b64url_decode(public["n"]), b64url_decode(public["e"])
    except MtbFormatError:
        raise KeyMaterialError("a token key's members are not base64url") from None
    for member in ("kid", "alg", "use"):  # public, descriptive: kept as given
        if isinstance(jwk.get(member), str) and len(jwk[member]) <= 200:
            public[member] = jwk[member]
    return public


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, base64url."""
    public = public_token_jwk(jwk)
    members = {m: public[m] for m in _THUMBPRINT_MEMBERS[public["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


# --- HS256 device keys ------------------------------------------------------------------------

def hs256(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")  # one-shot, in C


def derive_device_key(kdk: bytes, did: str) -> bytes:
    """The project's device-key derivation (spec §3). The one place to swap in BoB's own."""
    return hs256(kdk, did.encode("utf-8"))[:DEVICE_KEY_BYTES]


# --- the key store ----------------------------------------------------------------------------

@dataclass
class KeyStore:
    """Issuer keys by (pid, kid), auth-token keys likewise, and KDKs by kid."""

    issuer_keys: dict[tuple[str, str], ec.EllipticCurvePublicKey] = field(default_factory=dict)
    authtoken_keys: dict[tuple[str, str], ec.EllipticCurvePublicKey] = field(default_factory=dict)
    kdks: dict[str, bytes] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    accepted: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)  # (pid, kid, jwk, group)

    def issuer_key(self, pid: str, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self.issuer_keys.get((str(pid), kid))

    def add_metadata(self, participants: Any) -> None:
        """Load participant metadata (a list of participants with ``mtbPublicKeys`` JWKs).

        A single unusable key is skipped and noted (other participants' keys still load);
        a document of the wrong shape is refused whole.
        """
        if not isinstance(participants, list) or not participants:
            raise KeyMaterialError("participant metadata is not a non-empty list of participants")
        for participant in participants:
            if not isinstance(participant, dict) or "pid" not in participant:
                raise KeyMaterialError("participant metadata entry without 'pid'")
            pid = str(participant["pid"])
            for group, target in (("mtbPublicKeys", self.issuer_keys),
                                  ("authtokenPublicKeys", self.authtoken_keys)):
                group_keys = participant.get(group) or []
                if not isinstance(group_keys, list):
                    self.skipped.append(f"pid {pid} {group}: not a list")
                    continue
                for jwk in group_keys:
                    try:
                        target[(pid, str(jwk["kid"]))] = jwk_public_key(jwk)
                        self.accepted.append((pid, str(jwk["kid"]), dict(jwk), group))
                    except (KeyMaterialError, KeyError, TypeError, AttributeError) as exc:
                        self.skipped.append(f"pid {pid} {group}: {exc}")

    @classmethod
    def from_metadata_file(cls, path: str | Path) -> "KeyStore":
        store = cls()
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeyMaterialError(f"cannot read participant metadata {path}: {exc}") from exc
        store.add_metadata(document)
        return store

    def add_kdks(self, kdks: Iterable[tuple[str, bytes]]) -> None:
        self.kdks.update(kdks)


def participant_metadata(pid: int | str, issuer_jwks: list[dict[str, str]],
                         authtoken_jwks: list[dict[str, str]] | None = None,
                         name: str | None = None) -> list[dict[str, Any]]:
    """A participant metadata document (BoB format) for one participant."""
    return [{"pid": int(pid), "organisationName": name or f"Participant {pid}",
             "mtbPublicKeys": issuer_jwks, "authtokenPublicKeys": authtoken_jwks or []}]
