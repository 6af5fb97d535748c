"""TLS on the device's link to the server: a private CA, a client certificate (mutual TLS) and
an optional pin on the server's public key.

The pin is the SHA-256 of the server certificate's SubjectPublicKeyInfo, as HPKP defined it:
it survives a certificate renewal that keeps the key, and is checked in the handshake of every
connection, before a byte of the request (the Basic credentials, a token) is sent. Several pins
may be given, so that a new server key can be announced before it is used.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class PinMismatch(ssl.SSLCertVerificationError):
    """The server's public key is not one of the pinned ones."""


def spki_sha256(der_certificate: bytes) -> bytes:
    """SHA-256 of a DER certificate's SubjectPublicKeyInfo."""
    public_key = x509.load_der_x509_certificate(der_certificate).public_key()
    return hashlib.sha256(public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()


def parse_pin(text: str) -> bytes:
    """A pin as 64 hex digits (colons and spaces allowed, as ``openssl dgst`` prints them) or as
    base64 (as HPKP and ``openssl dgst -binary | base64`` give it)."""
    compact = text.strip().replace(":", "").replace(" ", "")
    if compact.startswith("sha256/"):
        compact = compact[len("sha256/"):]
    try:
        digest = bytes.fromhex(compact) if len(compact) == 64 else base64.b64decode(compact, validate=True)
    except (ValueError, binascii.Error):
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"not a SHA-256 pin (64 hex digits or base64 of 32 bytes): {text!r:.80}")
    return digest


def _pinned(pins: frozenset[bytes]) -> type[ssl.SSLObject]:
    class PinnedSSLObject(ssl.SSLObject):
        """Checks the pin when the handshake completes: the connection fails before any
        application data is written to it."""

        def do_handshake(self) -> None:
            super().do_handshake()
            certificate = self.getpeercert(binary_form=True)
            if certificate is None or spki_sha256(certificate) not in pins:
                raise PinMismatch("the server's public key does not match pin_sha256")

    return PinnedSSLObject


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None = None  # None: the system's CAs
    client_cert: Path | None = None  # mutual TLS: this certificate (PEM) ...
    client_key: Path | None = None  # ... and its key
    pins: frozenset[bytes] = frozenset()

    def context(self) -> ssl.SSLContext:
        """Verifies the server's certificate and name (TLS 1.2 or later), presents ours if set,
        and checks the pin on every connection made with it."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"server.ca_file {self.ca_file}: {exc}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert is not None:
            try:
                context.load_cert_chain(self.client_cert, self.client_key)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"server.client_cert {self.client_cert} / client_key {self.client_key}: "
                                 f"{exc}") from exc
        if self.pins:
            context.sslobject_class = _pinned(self.pins)
        return context
