"""What the device agent and the server both speak: the MTB codec (this package's top level,
``mtb.decode``), strict CBOR (:mod:`mtb.cbor`), keys (:mod:`mtb.keys`), the signer
(:mod:`mtb.signer`), the verifier (:mod:`mtb.verifier`), the time format (:mod:`mtb.timeutil`),
and the checks of a scan (:mod:`mtb.checks` with :mod:`mtb.scan_context`, :mod:`mtb.policy` and
:mod:`mtb.travel`), which the device agent and the server's online validation both run.

It imports neither ``agent`` nor ``server`` (a layer test checks it), so the server never
depends on the device agent and a third party can take the codec alone.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from .codec import (MAX_INPUT_BYTES, MAX_MTB_BYTES, MAX_TICKETS, VERSION, DeviceHeader, DeviceSigned,
                    IssuerHeader, IssuerSigned, Mtb, MtbFormatError, Ticket, Transport, b64url_decode,
                    b64url_encode, body, container, decode, decode_container, signed_data, unwrap_transport,
                    wrap_transport)

try:
    __version__ = _version("mtb-validator")  # one version for the agent, the server and this package
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["MAX_INPUT_BYTES", "MAX_MTB_BYTES", "MAX_TICKETS", "VERSION", "DeviceHeader", "DeviceSigned",
           "IssuerHeader", "IssuerSigned", "Mtb", "MtbFormatError", "Ticket", "Transport", "b64url_decode",
           "b64url_encode", "body", "container", "decode", "decode_container", "signed_data",
           "unwrap_transport", "wrap_transport"]
