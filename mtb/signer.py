"""Minting: the issuer side (the bundled server, the demo, tests) and a wallet's device signing."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from . import cbor
from . import codec as mtb
from .keys import es256_sign, hs256
from .timeutil import format_basic


@dataclass(frozen=True)
class TicketSpec:
    """What an issuer puts in one ticket of the payload (spec §4)."""

    ticket_id: str
    valid_from: datetime
    valid_until: datetime
    zones: Sequence[str] | None = None
    stop_areas: Sequence[str] | None = None
    modes: Sequence[str] | None = None
    traveller_id: str | None = None
    category: str | None = None
    product_id: str | None = None
    active: bool | None = None

    def to_cbor_map(self) -> dict[str, Any]:
        metadata: list[dict[str, Any]] = [{"tid": self.ticket_id}]
        if self.product_id:
            metadata.append({"p_cid": self.product_id})
        fields: dict[str, Any] = {"c_md": metadata, "vf": format_basic(self.valid_from),
                                  "vu": format_basic(self.valid_until)}
        for key, value in (("zon", self.zones), ("sa", self.stop_areas), ("mot", self.modes)):
            if value is not None:
                fields[key] = list(value)
        for key, value in (("trv", self.traveller_id), ("cat", self.category), ("act", self.active)):
            if value is not None:
                fields[key] = value
        return fields


def mint(key: ec.EllipticCurvePrivateKey, *, pid: int | str, kid: str, tickets: Iterable[TicketSpec],
         nbf: datetime | None = None, exp: datetime | None = None, bind_device: str | None = None,
         dsp: int | str | None = None, miv: str = "1", indefinite: bool = False,
         extra_header: dict[str, Any] | None = None) -> bytes:
    """An issuer-signed MTB container (raw CBOR); wrap it with :func:`mtb.wrap_transport`."""
    header: dict[str, Any] = {"alg": "ES256", "iid": str(pid), "kid": kid, "miv": miv}
    if nbf is not None:
        header["nbf"] = format_basic(nbf)
    if exp is not None:
        header["exp"] = format_basic(exp)
    if dsp is not None:
        header["dsp"] = int(dsp) if str(dsp).isascii() and str(dsp).isdigit() else dsp
    if bind_device is not None:
        header["dsi"] = bind_device
    header.update(extra_header or {})
    header_bytes = cbor.dumps(header, indefinite=indefinite)
    payload_bytes = cbor.dumps({str(pid): [t.to_cbor_map() for t in tickets]}, indefinite=indefinite)
    signature = es256_sign(key, mtb.signed_data(header_bytes, payload_bytes))
    return mtb.container(mtb.body(header_bytes, payload_bytes, signature), indefinite=indefinite)


def device_sign(issuer_container: bytes, *, did: str, kid: str, device_key: bytes, at: datetime | None,
                indefinite: bool = False, extra_header: dict[str, Any] | None = None) -> bytes:
    """Wrap an issuer MTB (any transport form) in a device layer signed with HS256 at ``at``;
    ``at=None`` leaves 't' out, as real wallets do (the public pid-60 sample: {alg, did, kid})."""
    inner = mtb.decode(issuer_container).issuer.body
    header: dict[str, Any] = {"alg": "HS256", "did": did, "kid": kid}
    if at is not None:
        header["t"] = format_basic(at)
    header.update(extra_header or {})
    header_bytes = cbor.dumps(header, indefinite=indefinite)
    signature = hs256(device_key, mtb.signed_data(header_bytes, inner))
    return mtb.container(mtb.body(header_bytes, inner, signature), indefinite=indefinite)
