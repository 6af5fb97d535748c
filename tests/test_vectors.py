"""Real MTBs from the field (tests/vectors, copied from shared/vectors) decode and verify."""
from __future__ import annotations

import pytest

import mtb
from mtb import keys, verifier

from .conftest import VECTORS

DEVICE_KEY = b"1234"


def entur() -> bytes:
    return bytes.fromhex((VECTORS / "entur-card-mtb.hex").read_text().strip())


def text(name: str) -> str:
    return (VECTORS / name).read_text().strip()


@pytest.fixture(scope="module")
def pid10() -> keys.KeyStore:
    return keys.KeyStore.from_metadata_file(VECTORS / "participant-metadata-pid10.json")


def test_entur_card_mtb_verifies(pid10):
    decoded = mtb.decode(entur())
    assert decoded.transport == "raw"
    assert decoded.issuer.header.kid == "10:20230213"
    assert decoded.issuer.header.iid == "10"
    assert "tpk" in decoded.issuer.header.fields
    assert decoded.tickets == ()
    assert verifier.verify_issuer(decoded, pid10).status == "valid"


def flip_inside(data: bytes, needle: bytes) -> list[bytes]:
    """Every MTB with one bit flipped at each position of ``needle`` inside ``data``."""
    start = data.index(needle)
    return [data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:] for i in range(start, start + len(needle))]


@pytest.mark.parametrize("part", ["header", "payload", "signature"])
def test_entur_one_flipped_byte_fails(pid10, part):
    raw = entur()
    layer = mtb.decode(raw).issuer
    needle = {"header": layer.header_bytes, "payload": layer.payload_bytes, "signature": layer.signature}[part]
    outcomes = set()
    for forged in flip_inside(raw, needle):
        try:
            outcomes.add(verifier.verify_issuer(mtb.decode(forged), pid10).code)
        except mtb.MtbFormatError:
            outcomes.add(1)
    assert 0 not in outcomes
    assert outcomes <= {1, 5}


def test_pid60_decodes_and_is_unknown_key(pid10):
    decoded = mtb.decode(text("pid60-issuer-mtb.b64u"))
    assert decoded.transport == "base64url"
    assert [t.ticket_id for t in decoded.tickets] == ["3013949408"]
    assert decoded.tickets[0].product_id == "VT432I4E8"
    assert decoded.issuer.header.exp.isoformat() == "2023-05-12T11:41:04+00:00"
    check = verifier.verify_issuer(decoded, pid10)
    assert (check.status, check.code) == ("unknown-key", 5)


def test_pid60_device_signed_verifies_with_key_1234(pid10):
    decoded = mtb.decode(text("pid60-device-signed.b64u"))
    assert decoded.device is not None
    assert decoded.device.header.did == "gwVdvnLNNxg"
    assert decoded.device.header.kid == "key123"
    assert verifier.verify_device(decoded, pid10, DEVICE_KEY).status == "valid"
    wrong = verifier.verify_device(decoded, pid10, b"1235")
    assert (wrong.status, wrong.code) == ("invalid", 6)
    assert verifier.verify_device(decoded, pid10).status == "unknown-key"


def test_device_layer_wraps_the_issuer_mtb_unchanged():
    issuer_only = mtb.decode(text("pid60-issuer-mtb.b64u"))
    device_signed = mtb.decode(text("pid60-device-signed.b64u"))
    assert device_signed.issuer.body == issuer_only.issuer.body


def test_zlib_form_decodes_to_the_same_bytes(pid10):
    plain = mtb.decode(text("pid60-device-signed.b64u"))
    zipped = mtb.decode(text("pid60-device-signed.zlib.b64u"))
    assert zipped.transport == "zlib+base64url"
    assert zipped.container == plain.container
    assert verifier.verify_device(zipped, pid10, DEVICE_KEY).status == "valid"
