"""Mint -> decode -> verify in every transport form, and what the decoder refuses."""
from __future__ import annotations

import os
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import mtb
from mtb import cbor, keys, signer, verifier

from .conftest import NOW, ticket

FORMS = ["raw", "zlib", "base64url", "zlib+base64url"]
DEVICE_KEY = keys.derive_device_key(b"k" * 32, "phone-1")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("indefinite", [False, True])
def test_issuer_only_round_trip(issuer_key, keystore, form, indefinite):
    spec = ticket(zones=["A", "B"], modes=["bus"], stop_areas=["SA1"], traveller_id="trav-1",
                  category="adult", product_id="P1")
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[spec], nbf=NOW, indefinite=indefinite)
    assert (raw[0] == 0xBF) is indefinite
    decoded = mtb.decode(mtb.wrap_transport(raw, form))
    assert decoded.transport == form
    assert decoded.container == raw
    [got] = decoded.tickets
    assert (got.ticket_id, got.zones, got.modes, got.stop_areas) == ("T1", ("A", "B"), ("bus",), ("SA1",))
    assert (got.traveller_id, got.category, got.product_id, got.issuer_pid) == ("trav-1", "adult", "P1", "1234")
    assert got.valid_from == spec.valid_from and got.valid_until == spec.valid_until
    assert decoded.issuer.header.nbf == NOW
    assert verifier.verify_issuer(decoded, keystore).status == "valid"
    assert verifier.verify_device(decoded, keystore).status == "absent"


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("indefinite", [False, True])
def test_device_signed_round_trip(issuer_key, keystore, form, indefinite):
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()], bind_device="phone-1",
                         dsp=1234, indefinite=indefinite)
    signed = signer.device_sign(mtb.wrap_transport(issued, "zlib+base64url"), did="phone-1", kid="kdk-1",
                                device_key=DEVICE_KEY, at=NOW, indefinite=indefinite)
    decoded = mtb.decode(mtb.wrap_transport(signed, form))
    assert decoded.device.header.t == NOW
    assert decoded.issuer.header.dsi == "phone-1" and decoded.issuer.header.dsp == "1234"
    assert decoded.issuer.body == mtb.decode(issued).issuer.body
    assert verifier.verify_issuer(decoded, keystore).ok
    assert verifier.verify_device(decoded, keystore).status == "valid"  # KDK derivation
    assert verifier.verify_device(decoded, keystore, DEVICE_KEY).status == "valid"  # key given directly
    assert verifier.verify_device(decoded, keystore, b"x" * 16).code == 6


def test_bundle_of_tickets(issuer_key, keystore):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("A1"), ticket("A2", category="youth")])
    decoded = mtb.decode(raw)
    assert [t.ticket_id for t in decoded.tickets] == ["A1", "A2"]
    assert decoded.tickets[1].category == "youth"


def forge_header(issuer_key, header: dict) -> bytes:
    """A container whose issuer header is ``header``, signed correctly with the test key."""
    header_bytes = cbor.dumps(header)
    payload = cbor.dumps({"1234": [ticket().to_cbor_map()]})
    sig = keys.es256_sign(issuer_key, mtb.signed_data(header_bytes, payload))
    return mtb.container(mtb.body(header_bytes, payload, sig))


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", "ES384", ""])
def test_issuer_alg_other_than_es256_is_refused(issuer_key, keystore, alg):
    forged = forge_header(issuer_key, {"alg": alg, "iid": "1234", "kid": "1234:k1", "miv": "1"})
    check = verifier.verify_issuer(mtb.decode(forged), keystore)
    assert (check.status, check.code) == ("invalid", 5)


def test_issuer_header_with_did_is_malformed(issuer_key):
    forged = forge_header(issuer_key, {"alg": "ES256", "iid": "1234", "kid": "1234:k1", "miv": "1", "did": "x"})
    # A header with 'did' and two more parts reads as a device layer whose inner body is no MTB.
    with pytest.raises(mtb.MtbFormatError):
        mtb.decode(forged)


def test_issuer_header_with_did_inside_a_device_layer_is_malformed(issuer_key):
    forged = forge_header(issuer_key, {"alg": "ES256", "iid": "1234", "kid": "1234:k1", "miv": "1", "did": "x"})
    header = cbor.dumps({"alg": "HS256", "did": "phone-1", "kid": "kdk-1"})
    inner = cbor.loads_strict(cbor.loads_strict(forged)["p"])
    wrapped = mtb.container(mtb.body(header, mtb.body(*inner), b"\0" * 32))
    with pytest.raises(mtb.MtbFormatError, match="did"):
        mtb.decode(wrapped)


def test_stripped_device_signature_fails_with_4(issuer_key, keystore):
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()], bind_device="phone-1", dsp=1234)
    signed = signer.device_sign(issued, did="phone-1", kid="kdk-1", device_key=DEVICE_KEY, at=NOW)
    stripped = mtb.decode(mtb.container(mtb.decode(signed).issuer.body))
    assert verifier.verify_issuer(stripped, keystore).ok  # the issuer layer alone is genuine...
    check = verifier.verify_device(stripped, keystore)
    assert (check.status, check.code) == ("absent", 4)  # ...but its binding demands a device layer


def test_device_alg_other_than_hs256_is_4(issuer_key, keystore):
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    signed = signer.device_sign(issued, did="phone-1", kid="kdk-1", device_key=DEVICE_KEY, at=NOW,
                                extra_header={"alg": "none"})
    assert verifier.verify_device(mtb.decode(signed), keystore).code == 4


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\xa2\x61v", "malformed"),  # truncated CBOR
    (b"!!!not base64!!!", "base64url"),
    (os.urandom(10 * 1024 * 1024), "exceeds"),
    (zlib.compress(b"\xa0" * (65 * 1024)), "exceeds"),  # a zlib bomb just over 64 KiB
    (zlib.compress(b"\0" * (50 * 1024 * 1024), 9), "exceeds"),  # and a real one: 50 MiB of zeros
    (zlib.compress(b"\xa2\x61v\x41")[:-3], "zlib"),  # truncated zlib stream
    (cbor.dumps({"v": cbor.dumps("2"), "p": b""}), "version"),
    (cbor.dumps({"v": "1", "p": b""}), "byte string"),
    (cbor.dumps({"v": cbor.dumps("1"), "p": cbor.dumps([b"", b""])}), "three"),
    (cbor.dumps({"v": cbor.dumps("1"), "p": b"", "x": 1}), "keys"),
    (b"\xbf" + b"\x81" * 1000 + b"\x00", "nesting|malformed"),  # deeply nested CBOR
])
def test_bad_input_is_a_format_error(data, message):
    with pytest.raises(mtb.MtbFormatError, match=message):
        mtb.decode(data)


def test_wrong_types_in_header_and_ticket(issuer_key):
    with pytest.raises(mtb.MtbFormatError, match="'kid' is not text"):
        mtb.decode(forge_header(issuer_key, {"alg": "ES256", "iid": "1234", "kid": 7, "miv": "1"}))
    with pytest.raises(mtb.MtbFormatError, match="'nbf'"):
        mtb.decode(forge_header(issuer_key, {"alg": "ES256", "iid": "1234", "kid": "k", "miv": "1", "nbf": "soon"}))
    bad_ticket = dict(ticket().to_cbor_map(), zon="A")
    with pytest.raises(mtb.MtbFormatError, match="'zon'"):
        mtb.decode(mtb.container(mtb.body(cbor.dumps({"alg": "ES256", "iid": "1", "kid": "k", "miv": "1"}),
                                          cbor.dumps({"1": [bad_ticket]}), b"s" * 64)))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_are_a_format_error_that_says_why(data):
    with pytest.raises(mtb.MtbFormatError) as refused:  # any other exception fails the test too
        mtb.decode(data)
    assert str(refused.value).strip()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_mtbs_never_verify_or_crash(issuer_key, keystore, data):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    index = data.draw(st.integers(0, len(raw) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != raw[index]))
    forged = raw[:index] + bytes([value]) + raw[index + 1:]
    try:
        decoded = mtb.decode(forged)
    except mtb.MtbFormatError:
        return
    # A byte change inside the unsigned framing can still decode to the same signed parts.
    same = decoded.issuer.body == mtb.decode(raw).issuer.body
    assert verifier.verify_issuer(decoded, keystore).ok == same


def test_a_bundle_is_capped(issuer_key):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(f"B{i}") for i in range(mtb.MAX_TICKETS)])
    assert len(mtb.decode(raw).tickets) == mtb.MAX_TICKETS
    too_many = signer.mint(issuer_key, pid=1234, kid="1234:k1",
                           tickets=[ticket(f"B{i}") for i in range(mtb.MAX_TICKETS + 1)])
    with pytest.raises(mtb.MtbFormatError, match="more than"):
        mtb.decode(too_many)


def test_a_zlib_bomb_is_refused_without_inflating_it(issuer_key):
    """An inflate that checks the size only afterwards holds the whole bomb in memory first."""
    bomb = zlib.compress(b"\xa2" + b"\0" * (64 * 1024 * 1024), 9)  # 64 MiB of zeros in 65 KiB
    tracemalloc.start()
    try:
        with pytest.raises(mtb.MtbFormatError, match="exceeds"):
            mtb.decode(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * mtb.MAX_MTB_BYTES, f"{peak} bytes allocated to refuse a bomb"


def test_the_device_key_derivation_gives_the_known_answers():
    """HMAC-SHA-256(KDK, UTF-8(did))[0:16] (spec §3), computed outside the project (openssl dgst
    -sha256 -mac HMAC): a changed derivation would refuse every phone's signature in the field."""
    assert keys.derive_device_key(b"k" * 32, "phone-1").hex() == "dbc06ec5b4f640ef672beb1ed3c0b1e9"
    assert keys.derive_device_key(bytes(range(32)), "telefon-\u03a97").hex() == "9d72272fac4155ce449d1878c2ed3cfb"


def test_bytes_after_the_zlib_stream_are_refused(issuer_key):
    raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    with pytest.raises(mtb.MtbFormatError, match="after the zlib stream"):
        mtb.decode(zlib.compress(raw) + b"junk")
