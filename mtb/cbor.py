"""Strict CBOR for untrusted bytes, and the encodings a minting issuer needs.

Decoding refuses what a signed ticket never needs and an attacker might use: duplicate map
keys (two readers could see two different headers), deep nesting, semantic tags, and trailing
bytes after the item.
"""
from __future__ import annotations

import io
from typing import Any

import cbor2

MAX_DEPTH = 16


class CborError(ValueError):
    """Bytes that are not one well-formed, acceptable CBOR item."""


def _refuse_tag(decoder: object, tag: cbor2.CBORTag) -> Any:
    raise CborError(f"CBOR tag {tag.tag} is not allowed in an MTB")


def _refuse_semantic(decoder: object) -> Any:
    raise CborError("CBOR semantic tags are not allowed in an MTB")


# Every tag cbor2 would otherwise turn into a datetime, Decimal, regex, set... is refused.
_SEMANTIC_REFUSED = {tag: _refuse_semantic for tag in (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36,
                                                      37, 100, 256, 258, 260, 261, 270, 1004, 55799)}


class StrictDecoder:
    """Decodes one CBOR item at a time, refusing what :func:`loads_strict` refuses.

    One decoder serves every layer of an MTB (seven nested items): setting its options up is
    most of the cost of a small item, so a scan pays it once. Not thread-safe: one per caller.
    """

    def __init__(self) -> None:
        self._decoder = cbor2.CBORDecoder(
            io.BytesIO(b""),
            tag_hook=_refuse_tag,
            semantic_decoders=_SEMANTIC_REFUSED,
            max_depth=MAX_DEPTH,
            allow_duplicate_keys=False,
            strict_hashable_types=True,
        )

    def loads(self, data: bytes) -> Any:
        """Decode exactly one CBOR item from ``data``; any problem is a :class:`CborError`."""
        if not isinstance(data, (bytes, bytearray)):
            raise CborError(f"expected bytes, got {type(data).__name__}")
        stream = io.BytesIO(data)
        self._decoder.fp = stream
        try:
            value = self._decoder.decode()
        except CborError:
            raise
        except Exception as exc:  # cbor2 raises several types on hostile input; all mean "bad"
            raise CborError(f"malformed CBOR: {exc}") from exc
        if stream.tell() != len(data):
            raise CborError(f"{len(data) - stream.tell()} trailing bytes after the CBOR item")
        return value


def loads_strict(data: bytes) -> Any:
    """Decode exactly one CBOR item from ``data``; any problem is a :class:`CborError`."""
    return StrictDecoder().loads(data)


def dumps(value: Any, *, indefinite: bool = False) -> bytes:
    """Encode ``value``; with ``indefinite`` every map is indefinite-length, as some wallets do."""
    if not indefinite:
        return cbor2.dumps(value)
    if isinstance(value, dict):
        body = b"".join(dumps(k, indefinite=True) + dumps(v, indefinite=True) for k, v in value.items())
        return b"\xbf" + body + b"\xff"
    if isinstance(value, (list, tuple)):
        head = cbor2.dumps([None] * len(value))[: -len(value) or None]
        return head + b"".join(dumps(item, indefinite=True) for item in value)
    return cbor2.dumps(value)
