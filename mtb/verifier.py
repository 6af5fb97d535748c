"""Signature verification over the exact scanned bytes: issuer ES256, device HS256.

Results carry the ticketEvent code they map to (spec §5), so the engine and the CLI agree.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from .keys import KeyStore, derive_device_key, es256_verify, hs256
from .codec import Mtb, signed_data

DEFAULT_ISSUER_ALGS = frozenset({"ES256"})
Status = Literal["valid", "invalid", "unknown-key", "absent"]


@dataclass(frozen=True)
class SignatureCheck:
    status: Status
    code: int  # 0 when it passes, else the ticketEvent result code
    reason: str

    @property
    def ok(self) -> bool:
        return self.code == 0


# The answers every genuine ticket gets, made once: a scan builds no result object when it passes.
ISSUER_VALID = SignatureCheck("valid", 0, "issuer signature valid")
DEVICE_VALID = SignatureCheck("valid", 0, "device signature valid")
DEVICE_ABSENT = SignatureCheck("absent", 0, "no device signature")


def verify_issuer(mtb: Mtb, keys: KeyStore, allowed_algs: frozenset[str] = DEFAULT_ISSUER_ALGS) -> SignatureCheck:
    header = mtb.issuer.header
    if header.alg not in allowed_algs or header.alg != "ES256":
        return SignatureCheck("invalid", 5, f"issuer alg {header.alg!r} is not allowed")
    key = keys.issuer_key(header.iid, header.kid)
    if key is None:
        return SignatureCheck("unknown-key", 5, f"unknown issuer key pid {header.iid} kid {header.kid!r}")
    if not es256_verify(key, signed_data(mtb.issuer.header_bytes, mtb.issuer.payload_bytes), mtb.issuer.signature):
        return SignatureCheck("invalid", 5, "issuer signature does not verify")
    return ISSUER_VALID


def verify_device(mtb: Mtb, keys: KeyStore, device_key: bytes | None = None) -> SignatureCheck:
    """``device_key`` given directly wins over deriving one from the KDK named by ``kid``."""
    device = mtb.device
    if device is None:
        if mtb.issuer.header.device_bound:
            return SignatureCheck("absent", 4, "MTB is bound to a device but has no device signature")
        return DEVICE_ABSENT
    if device.header.alg != "HS256":
        return SignatureCheck("invalid", 4, f"device alg {device.header.alg!r} is not allowed")
    if device_key is None:
        kdk = keys.kdks.get(device.header.kid)
        if kdk is None:
            return SignatureCheck("unknown-key", 6, f"unknown device KDK {device.header.kid!r}")
        device_key = derive_device_key(kdk, device.header.did)
    expected = hs256(device_key, signed_data(device.header_bytes, mtb.issuer.body))
    if not hmac.compare_digest(expected, device.signature):
        return SignatureCheck("invalid", 6, "device signature does not verify")
    return DEVICE_VALID
