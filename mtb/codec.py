"""The MTB codec: transport forms, issuer- and device-signed containers, ticket payloads.

Spec: ``shared/spec/mtb-format.md``. Decoding keeps the exact signed byte strings (``hdr``,
``pay``, ``dhdr``, ``inner``) so that signatures are checked over what was scanned and never
over a re-encoding. Everything that arrives here is untrusted: any problem is an
:class:`MtbFormatError` (result code 1), never another exception.
"""
from __future__ import annotations

import base64
import binascii
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from . import cbor
from .timeutil import TimeFormatError, parse_time

MAX_INPUT_BYTES = 96 * 1024  # base64url text of a 64 KiB MTB, with room to spare
MAX_MTB_BYTES = 64 * 1024  # decompressed size cap: anything bigger is a bomb or junk
MAX_TICKETS = 20  # a family bundle fits; a forged MTB cannot make a scan write thousands of events
VERSION = "1"

Transport = Literal["raw", "zlib", "base64url", "zlib+base64url"]
_B64URL_TO_B64 = bytes.maketrans(b"-_", b"+/")


class MtbFormatError(ValueError):
    """Unreadable, malformed or unknown-format MTB (ticketEvent result code 1)."""


# Decoded parts are plain slotted dataclasses: a frozen one costs four times as much to build, and a
# scan builds six; nothing changes a decoded MTB.
@dataclass(slots=True)
class IssuerHeader:
    alg: str
    iid: str
    kid: str
    miv: str | int
    nbf: datetime | None = None
    exp: datetime | None = None
    dsp: str | None = None  # device signature provider pid: the MTB is bound to a device
    dsi: str | None = None  # the device id it is bound to
    fields: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def device_bound(self) -> bool:
        return self.dsp is not None or self.dsi is not None


@dataclass(slots=True)
class DeviceHeader:
    alg: str
    did: str
    kid: str
    t: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class Ticket:
    """One ticket of the payload (spec §4). ``valid_from``/``valid_until`` are None only for
    foreign dictionaries (real BoB payloads use other keys); the engine refuses those."""

    ticket_id: str
    issuer_pid: str
    valid_from: datetime | None
    valid_until: datetime | None
    product_id: str | None = None
    zones: tuple[str, ...] | None = None
    stop_areas: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    traveller_id: str | None = None
    category: str | None = None
    active: bool | None = None
    fields: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class IssuerSigned:
    """The issuer layer; ``body`` is the exact ``p`` byte string a device layer wraps."""

    body: bytes
    header_bytes: bytes
    payload_bytes: bytes
    signature: bytes
    header: IssuerHeader
    tickets: tuple[Ticket, ...]


@dataclass(slots=True)
class DeviceSigned:
    header_bytes: bytes
    header: DeviceHeader
    signature: bytes


@dataclass(slots=True)
class Mtb:
    transport: Transport
    container: bytes  # the raw CBOR container after transport decoding
    issuer: IssuerSigned
    device: DeviceSigned | None

    @property
    def tickets(self) -> tuple[Ticket, ...]:
        return self.issuer.tickets


# --- transport -------------------------------------------------------------------------------

def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    if not isinstance(text, (str, bytes, bytearray)):  # bytes(10**13) would allocate terabytes
        raise MtbFormatError(f"expected base64url text, got {type(text).__name__}")
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:
        raise MtbFormatError("not base64url text") from exc
    padded = raw.strip()
    raw = padded.rstrip(b"=")
    # '+' and '/' are base64 but not base64url; strict mode refuses every other stray byte. (find,
    # not `in`: bytes.__contains__ first tries its operand as an int and raises a TypeError to learn
    # it is not one, on every scan)
    if not raw or len(padded) - len(raw) > 2 or raw.find(b"+") >= 0 or raw.find(b"/") >= 0:
        raise MtbFormatError("not base64url text")
    try:
        return binascii.a2b_base64((raw + b"=" * (-len(raw) % 4)).translate(_B64URL_TO_B64), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MtbFormatError(f"bad base64url: {exc}") from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_MTB_BYTES + 1)
    except zlib.error as exc:
        raise MtbFormatError(f"bad zlib data: {exc}") from exc
    if len(out) > MAX_MTB_BYTES or inflater.unconsumed_tail:
        raise MtbFormatError(f"decompressed MTB exceeds {MAX_MTB_BYTES} bytes")
    if not inflater.eof:
        raise MtbFormatError("truncated zlib data")
    if inflater.unused_data:
        raise MtbFormatError(f"{len(inflater.unused_data)} bytes after the zlib stream")
    return out


def _is_cbor_map(data: bytes) -> bool:
    return bool(data) and (0xA0 <= data[0] <= 0xBB or data[0] == 0xBF)


def unwrap_transport(data: bytes | str) -> tuple[Transport, bytes]:
    """Tell the four transport forms apart by content and return the CBOR container bytes."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MtbFormatError("text input is not base64url") from exc
    if not data:
        raise MtbFormatError("empty input")
    if len(data) > MAX_INPUT_BYTES:
        raise MtbFormatError(f"input of {len(data)} bytes exceeds {MAX_INPUT_BYTES}")
    if _is_cbor_map(data):
        return "raw", bytes(data)
    if data[0] == 0x78:
        return "zlib", _inflate(bytes(data))
    decoded = b64url_decode(data)
    if _is_cbor_map(decoded):
        return "base64url", decoded
    if decoded[:1] == b"\x78":
        return "zlib+base64url", _inflate(decoded)
    raise MtbFormatError("unknown format: neither CBOR, zlib nor base64url of those")


def wrap_transport(container: bytes, form: Transport) -> bytes | str:
    """Encode a container in one of the transport forms (text for the base64url ones)."""
    if form == "raw":
        return container
    if form == "zlib":
        return zlib.compress(container, 9)
    if form == "base64url":
        return b64url_encode(container)
    if form == "zlib+base64url":
        return b64url_encode(zlib.compress(container, 9))
    raise ValueError(f"unknown transport form {form!r}")


# --- container -------------------------------------------------------------------------------
#
# The decoder is one straight line per layer: a field of the right type costs one test inline,
# and the helpers below are called only for what is absent, of another type, or must be
# converted, so every refusal keeps its wording. Which check comes first is part of that
# wording (a field with two problems names the first), so the order follows the spec's layers:
# container, version, device layer, device header, issuer layer, issuer header, payload.

def _refuse(what: str, key: str, value: Any) -> MtbFormatError:
    """The refusal of a text field ``key`` of ``what`` that is absent (None) or not text."""
    if value is None:
        return MtbFormatError(f"{what} lacks {key!r}")
    return MtbFormatError(f"{what} {key!r} is not text")


def _id(value: Any, key: str, what: str) -> str:
    """pids arrive as int or text in real MTBs; the project compares them as text."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MtbFormatError(f"{what} {key!r} is not an int or text")
    return str(value)


def _time(value: Any, key: str, what: str) -> datetime:
    if not isinstance(value, str):
        raise MtbFormatError(f"{what} {key!r} is not text")
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise MtbFormatError(f"{what} {key!r}: {exc}") from exc


def _texts(value: Any, key: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MtbFormatError(f"{what} {key!r} is not an array of text")
    return tuple(value)


def _triple(parts: Any, what: str) -> tuple[bytes, bytes, bytes]:
    if not isinstance(parts, list) or len(parts) != 3:
        raise MtbFormatError(f"{what} is not an array of three byte strings")
    header, body, signature = parts
    if isinstance(header, bytes) and isinstance(body, bytes) and isinstance(signature, bytes):
        return header, body, signature
    name = "header" if not isinstance(header, bytes) else "body" if not isinstance(body, bytes) else "signature"
    raise MtbFormatError(f"{what} {name} is not a byte string")


def _merged_metadata(metadata: Any, what: str) -> dict[str, Any]:
    if not isinstance(metadata, list) or not all(isinstance(m, dict) for m in metadata):
        raise MtbFormatError(f"{what} lacks 'c_md' metadata")
    merged: dict[str, Any] = {}
    for entry in metadata:
        merged.update(entry)
    return merged


def _ticket(issuer_pid: str, fields: Any, index: int) -> Ticket:
    what = f"ticket {index}"
    if not isinstance(fields, dict):
        raise MtbFormatError(f"{what} is not a CBOR map")
    get = fields.get
    metadata = get("c_md")
    if type(metadata) is list and len(metadata) == 1 and isinstance(metadata[0], dict):
        merged = metadata[0]  # the usual single entry: read as it is, never changed
    else:
        merged = _merged_metadata(metadata, what)
    ticket_id = merged.get("tid")
    if not isinstance(ticket_id, str) or not ticket_id:
        ticket_id = None if ticket_id is None else _id(ticket_id, "tid", what)
        if not ticket_id:
            raise MtbFormatError(f"{what} lacks a ticket id ('tid' in 'c_md')")
    active = get("act")
    if active is not None and not isinstance(active, bool):
        raise MtbFormatError(f"{what} 'act' is not a boolean")
    valid_from, valid_until, product_id = get("vf"), get("vu"), merged.get("p_cid")
    if valid_from is not None:
        valid_from = _time(valid_from, "vf", what)
    if valid_until is not None:
        valid_until = _time(valid_until, "vu", what)
    if product_id is not None and not isinstance(product_id, str):
        product_id = _id(product_id, "p_cid", what)
    zones, stop_areas, modes = get("zon"), get("sa"), get("mot")
    if zones is not None:
        zones = _texts(zones, "zon", what)
    if stop_areas is not None:
        stop_areas = _texts(stop_areas, "sa", what)
    if modes is not None:
        modes = _texts(modes, "mot", what)
    traveller_id, category = get("trv"), get("cat")
    if traveller_id is not None and not isinstance(traveller_id, str):
        raise _refuse(what, "trv", traveller_id)
    if category is not None and not isinstance(category, str):
        raise _refuse(what, "cat", category)
    return Ticket(ticket_id, issuer_pid, valid_from, valid_until, product_id, zones, stop_areas, modes,
                  traveller_id, category, active, fields)


def _issuer_header(fields: Any) -> IssuerHeader:
    what = "issuer header"
    if not isinstance(fields, dict):
        raise MtbFormatError(f"{what} is not a CBOR map")
    if "did" in fields:
        raise MtbFormatError("issuer header carries 'did' (a device header key)")
    get = fields.get
    miv = get("miv")
    if isinstance(miv, bool) or not isinstance(miv, (str, int)):
        raise MtbFormatError("issuer header lacks 'miv' or it is not text or int")
    alg, iid, kid = get("alg"), get("iid"), get("kid")
    if not isinstance(alg, str):
        raise _refuse(what, "alg", alg)
    if not isinstance(iid, str) or not iid:
        iid = None if iid is None else _id(iid, "iid", what)
        if not iid:
            raise MtbFormatError(f"{what} lacks 'iid'")
    if not isinstance(kid, str):
        raise _refuse(what, "kid", kid)
    nbf, exp, dsp, dsi = get("nbf"), get("exp"), get("dsp"), get("dsi")
    if nbf is not None:
        nbf = _time(nbf, "nbf", what)
    if exp is not None:
        exp = _time(exp, "exp", what)
    if dsp is not None:
        dsp = _id(dsp, "dsp", what)
    if dsi is not None and not isinstance(dsi, str):
        raise _refuse(what, "dsi", dsi)
    return IssuerHeader(alg, iid, kid, miv, nbf, exp, dsp, dsi, fields)


def _device_header(fields: dict[str, Any]) -> DeviceHeader:
    what = "device header"
    get = fields.get
    alg, did, kid, signed_at = get("alg"), get("did"), get("kid"), get("t")
    if not isinstance(alg, str):
        raise _refuse(what, "alg", alg)
    if not isinstance(did, str):
        raise _refuse(what, "did", did)
    if not isinstance(kid, str):
        raise _refuse(what, "kid", kid)
    if signed_at is not None:
        signed_at = _time(signed_at, "t", what)
    return DeviceHeader(alg, did, kid, signed_at, fields)


_decoders = threading.local()  # one strict decoder per thread serves every layer of every MTB
_VERSION_ITEM = cbor.dumps(VERSION)  # how every minter writes it; other encodings are decoded


def decode_container(container: bytes, transport: Transport = "raw") -> Mtb:
    decoder = getattr(_decoders, "decoder", None)
    if decoder is None:
        decoder = _decoders.decoder = cbor.StrictDecoder()
    loads = decoder.loads
    what = "MTB container"  # the layer being decoded, for a refusal's wording
    try:
        top = loads(container)
        if not isinstance(top, dict):
            raise MtbFormatError(f"{what} is not a CBOR map")
        if len(top) != 2 or "v" not in top or "p" not in top:
            raise MtbFormatError(f"MTB container keys {sorted(map(str, top))} are not ['p', 'v']")
        version, body = top["v"], top["p"]
        if not isinstance(version, bytes):
            raise MtbFormatError("MTB 'v' is not a byte string")
        if version != _VERSION_ITEM:
            what = "MTB version"
            version = loads(version)
            if version != VERSION:
                raise MtbFormatError(f"unknown MTB version {version!r}")
        if not isinstance(body, bytes):
            raise MtbFormatError("MTB 'p' is not a byte string")
        what = "MTB"
        first, inner, signature = _triple(loads(body), what)
        what = "MTB header"
        first_fields = loads(first)
        if not isinstance(first_fields, dict):
            raise MtbFormatError(f"{what} is not a CBOR map")
        if "did" in first_fields:  # a device layer around the issuer's
            device: DeviceSigned | None = DeviceSigned(first, _device_header(first_fields), signature)
            issuer_body = inner
            what = "issuer MTB"
            header_bytes, payload_bytes, issuer_signature = _triple(loads(inner), what)
            what = "issuer header"
            header = _issuer_header(loads(header_bytes))
        else:  # the issuer's layer alone: its header is the one just read
            device = None
            issuer_body, header_bytes, payload_bytes, issuer_signature = body, first, inner, signature
            header = _issuer_header(first_fields)
        what = "payload"
        payload = loads(payload_bytes)
    except cbor.CborError as exc:
        raise MtbFormatError(f"{what}: {exc}") from exc
    if not isinstance(payload, dict):
        raise MtbFormatError("payload is not a CBOR map")
    tickets: list[Ticket] = []
    for pid, items in payload.items():
        if not isinstance(items, list):
            raise MtbFormatError(f"payload entry {pid!r} is not an array of tickets")
        if len(tickets) + len(items) > MAX_TICKETS:
            raise MtbFormatError(f"payload carries more than {MAX_TICKETS} tickets")
        issuer_pid = str(pid)
        for item in items:
            tickets.append(_ticket(issuer_pid, item, len(tickets)))
    issuer = IssuerSigned(issuer_body, header_bytes, payload_bytes, issuer_signature, header, tuple(tickets))
    return Mtb(transport, container, issuer, device)


def decode(data: bytes | str) -> Mtb:
    """Decode any transport form of an MTB; raises :class:`MtbFormatError` on bad input."""
    transport, container = unwrap_transport(data)
    return decode_container(container, transport)


# --- encoding (minting) ----------------------------------------------------------------------

def container(body: bytes, *, indefinite: bool = False) -> bytes:
    return cbor.dumps({"v": cbor.dumps(VERSION), "p": body}, indefinite=indefinite)


def signed_data(header_bytes: bytes, body_bytes: bytes) -> bytes:
    """What both signatures cover: CBOR definite array ``[header, body]`` of the exact bytes."""
    return cbor.dumps([header_bytes, body_bytes])


def body(header_bytes: bytes, payload_bytes: bytes, signature: bytes) -> bytes:
    return cbor.dumps([header_bytes, payload_bytes, signature])
