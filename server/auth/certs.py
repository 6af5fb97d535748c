"""BoB's login: ``GET /auth/{entityId}`` authenticated by the caller's TLS client certificate.

The server's own TLS (``serve --tls-cert --tls-key --tls-client-ca``) verifies the chain during
the handshake: a certificate the client CA did not issue never reaches this code (stdlib TLS
aborts the handshake for it; see the README). What arrives here is a verified certificate,
and the question is only which entities it may act as:

- a credential bound to a certificate subject (``credentials add --cert-subject``) accepts that
  subject only; one subject may be bound to several credentials (one device or test client
  acting as validator, inspector and sales system under different entity ids);
- a credential bound to none accepts a certificate whose subject's common name is the entity
  id, as BoB does.

Subjects are compared as RFC 4514 strings in cryptography's canonical form
(``CN=test_val,O=Operator,C=SE``; ``openssl x509 -noout -subject -nameopt RFC2253`` prints it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from ..store import Credential


@dataclass(frozen=True)
class CertSubject:
    text: str  # RFC 4514, canonical
    common_names: tuple[str, ...]


def canonical_subject(text: str) -> str:
    """An operator's subject string in the form the comparison uses (spaces around the
    separators, as people type them, are dropped); ValueError when it is no subject."""
    text = re.sub(r"(?<!\\)\s*([,+=])\s*", r"\1", text.strip())
    try:
        name = x509.Name.from_rfc4514_string(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an RFC 4514 subject ({exc}); e.g. CN=bus-17,O=Operator") from None
    if not list(name):
        raise ValueError("the certificate subject is empty")
    return name.rfc4514_string()


def peer_subject(request: web.Request) -> CertSubject | None:
    """The subject of the client certificate the TLS layer verified, or None (no TLS, no cert)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    subject = x509.load_der_x509_certificate(der).subject
    names = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return CertSubject(subject.rfc4514_string(), names)


def may_act_as(cred: Credential, subject: CertSubject) -> bool:
    if cred.cert_subject is not None:
        return cred.cert_subject == subject.text
    return cred.entity_id in subject.common_names
