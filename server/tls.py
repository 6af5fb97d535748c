"""TLS for the server itself: ``python -m server serve --tls-cert F --tls-key F [--tls-client-ca F
[--tls-client-auth optional]]``.

The other way is a reverse proxy that terminates TLS in front of a server on 127.0.0.1 (see
the README); either way no ticket, event or credential crosses a network in clear.

With a client CA, a client certificate is checked during the handshake: one the CA did not
issue ends the handshake (Python's ``ssl`` has no mode that asks for a certificate but lets an
unverifiable one through to the application). ``required`` (the default) also ends it when the
client shows none; ``optional`` lets such a client in, to log in with HTTP Basic or be refused
a token (401): BoB's ``/auth`` login by certificate, beside Basic, needs ``optional``.
"""
from __future__ import annotations

import ssl
from pathlib import Path


def server_ssl_context(cert_file: str | Path, key_file: str | Path, client_ca_file: str | Path | None = None,
                       *, client_cert_required: bool = True) -> ssl.SSLContext:
    """TLS 1.2 or later with the certificate chain in ``cert_file``; with ``client_ca_file``
    every client must show a certificate that CA issued (mutual TLS, e.g. a device fleet's),
    or, with ``client_cert_required=False``, may show none."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
        if client_ca_file is not None:
            context.load_verify_locations(cafile=client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED if client_cert_required else ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS set-up failed ({cert_file}, {key_file}"
                         f"{', ' + str(client_ca_file) if client_ca_file else ''}): {exc}") from exc
    return context
