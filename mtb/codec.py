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
    # '+' and '/' are base64 but not base64url; strict mode refuses every other stray byte
    if not raw or len(padded) - len(raw) > 2 or b"+" in raw or b"/" in raw:
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

def _map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MtbFormatError(f"{what} is not a CBOR map")
    return value


def _bstr(value: Any, what: str) -> bytes:
    if not isinstance(value, bytes):
        raise MtbFormatError(f"{what} is not a byte string")
    return value


def _text(fields: dict[str, Any], key: str, what: str, *, required: bool = False) -> str | None:
    value = fields.get(key)
    if value is None:
        if required:
            raise MtbFormatError(f"{what} lacks {key!r}")
        return None
    if not isinstance(value, str):
        raise MtbFormatError(f"{what} {key!r} is not text")
    return value


def _id(fields: dict[str, Any], key: str, what: str) -> str | None:
    """pids arrive as int or text in real MTBs; the project compares them as text."""
    value = fields.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MtbFormatError(f"{what} {key!r} is not an int or text")
    return str(value)


def _time(fields: dict[str, Any], key: str, what: str) -> datetime | None:
    value = _text(fields, key, what)
    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise MtbFormatError(f"{what} {key!r}: {exc}") from exc


def _decode_cbor(decoder: cbor.StrictDecoder, data: bytes, what: str) -> Any:
    try:
        return decoder.loads(data)
    except cbor.CborError as exc:
        raise MtbFormatError(f"{what}: {exc}") from exc


def _triple(decoder: cbor.StrictDecoder, body: bytes, what: str) -> tuple[bytes, bytes, bytes]:
    parts = _decode_cbor(decoder, body, what)
    if not isinstance(parts, list) or len(parts) != 3:
        raise MtbFormatError(f"{what} is not an array of three byte strings")
    return (_bstr(parts[0], f"{what} header"), _bstr(parts[1], f"{what} body"),
            _bstr(parts[2], f"{what} signature"))


def _issuer_header(decoder: cbor.StrictDecoder, data: bytes) -> IssuerHeader:
    fields = _map(_decode_cbor(decoder, data, "issuer header"), "issuer header")
    if "did" in fields:
        raise MtbFormatError("issuer header carries 'did' (a device header key)")
    miv = fields.get("miv")
    if isinstance(miv, bool) or not isinstance(miv, (str, int)):
        raise MtbFormatError("issuer header lacks 'miv' or it is not text or int")
    return IssuerHeader(
        alg=_text(fields, "alg", "issuer header", required=True),
        iid=_id(fields, "iid", "issuer header") or _missing("issuer header", "iid"),
        kid=_text(fields, "kid", "issuer header", required=True),
        miv=miv,
        nbf=_time(fields, "nbf", "issuer header"),
        exp=_time(fields, "exp", "issuer header"),
        dsp=_id(fields, "dsp", "issuer header"),
        dsi=_text(fields, "dsi", "issuer header"),
        fields=fields,
    )


def _missing(what: str, key: str) -> Any:
    raise MtbFormatError(f"{what} lacks {key!r}")


def _device_header(fields: dict[str, Any]) -> DeviceHeader:
    return DeviceHeader(
        alg=_text(fields, "alg", "device header", required=True),
        did=_text(fields, "did", "device header", required=True),
        kid=_text(fields, "kid", "device header", required=True),
        t=_time(fields, "t", "device header"),
        fields=fields,
    )


def _texts(fields: dict[str, Any], key: str, what: str) -> tuple[str, ...] | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MtbFormatError(f"{what} {key!r} is not an array of text")
    return tuple(value)


def _ticket(issuer_pid: str, fields: Any, index: int) -> Ticket:
    what = f"ticket {index}"
    fields = _map(fields, what)
    metadata = fields.get("c_md")
    if not isinstance(metadata, list) or not all(isinstance(m, dict) for m in metadata):
        raise MtbFormatError(f"{what} lacks 'c_md' metadata")
    merged: dict[str, Any] = {}
    for entry in metadata:
        merged.update(entry)
    ticket_id = _id(merged, "tid", what)
    if not ticket_id:
        raise MtbFormatError(f"{what} lacks a ticket id ('tid' in 'c_md')")
    active = fields.get("act")
    if active is not None and not isinstance(active, bool):
        raise MtbFormatError(f"{what} 'act' is not a boolean")
    return Ticket(
        ticket_id=ticket_id,
        issuer_pid=issuer_pid,
        valid_from=_time(fields, "vf", what),
        valid_until=_time(fields, "vu", what),
        product_id=_id(merged, "p_cid", what),
        zones=_texts(fields, "zon", what),
        stop_areas=_texts(fields, "sa", what),
        modes=_texts(fields, "mot", what),
        traveller_id=_text(fields, "trv", what),
        category=_text(fields, "cat", what),
        active=active,
        fields=fields,
    )


def _tickets(decoder: cbor.StrictDecoder, payload_bytes: bytes) -> tuple[Ticket, ...]:
    payload = _map(_decode_cbor(decoder, payload_bytes, "payload"), "payload")
    tickets: list[Ticket] = []
    for pid, items in payload.items():
        if not isinstance(items, list):
            raise MtbFormatError(f"payload entry {pid!r} is not an array of tickets")
        if len(tickets) + len(items) > MAX_TICKETS:
            raise MtbFormatError(f"payload carries more than {MAX_TICKETS} tickets")
        tickets.extend(_ticket(str(pid), item, len(tickets)) for item in items)
    return tuple(tickets)


def _issuer_signed(decoder: cbor.StrictDecoder, body: bytes) -> IssuerSigned:
    header_bytes, payload_bytes, signature = _triple(decoder, body, "issuer MTB")
    return IssuerSigned(
        body=body,
        header_bytes=header_bytes,
        payload_bytes=payload_bytes,
        signature=signature,
        header=_issuer_header(decoder, header_bytes),
        tickets=_tickets(decoder, payload_bytes),
    )


_decoders = threading.local()  # one strict decoder per thread serves every layer of every MTB


def decode_container(container: bytes, transport: Transport = "raw") -> Mtb:
    decoder = getattr(_decoders, "decoder", None)
    if decoder is None:
        decoder = _decoders.decoder = cbor.StrictDecoder()
    top = _map(_decode_cbor(decoder, container, "MTB container"), "MTB container")
    if set(top) != {"v", "p"}:
        raise MtbFormatError(f"MTB container keys {sorted(map(str, top))} are not ['p', 'v']")
    version = _decode_cbor(decoder, _bstr(top["v"], "MTB 'v'"), "MTB version")
    if version != VERSION:
        raise MtbFormatError(f"unknown MTB version {version!r}")
    body = _bstr(top["p"], "MTB 'p'")
    first, inner, signature = _triple(decoder, body, "MTB")
    first_fields = _map(_decode_cbor(decoder, first, "MTB header"), "MTB header")
    if "did" not in first_fields:
        return Mtb(transport, container, _issuer_signed(decoder, body), None)
    device = DeviceSigned(header_bytes=first, header=_device_header(first_fields), signature=signature)
    return Mtb(transport, container, _issuer_signed(decoder, inner), device)


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
