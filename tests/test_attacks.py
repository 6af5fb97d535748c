"""Named attacks on the validator, each through the real Engine on a real SQLite cache with
keys generated here (issue 6, item 3).

Every test asserts the exact result code, that the scan left its event(s) in the outbox with
that result, and that the engine still accepts a good ticket afterwards.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import struct
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import mtb
from mtb import cbor, keys, signer
from agent.cache import Cache
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator
from agent.engine import Decision, Engine

from .conftest import NOW, ticket

PID, OTHER = 1234, 5678
KID, OTHER_KID = "1234:k1", "5678:k1"
KDK = os.urandom(32)
_counter = itertools.count()


@dataclass
class Env:
    engine: Engine
    cache: Cache
    key: Any  # pid 1234's issuer key (trusted)
    other_key: Any  # pid 5678's issuer key (also trusted, for pid 5678 only)


@pytest.fixture(scope="module")
def participant_keys():
    return keys.generate_es256_key(), keys.generate_es256_key()


@pytest.fixture()
def env(tmp_path, participant_keys):
    key, other_key = participant_keys
    cache = Cache(tmp_path / "device.db", durability="normal")
    cache.import_metadata(keys.participant_metadata(PID, [keys.public_jwk(key, KID)])
                          + keys.participant_metadata(OTHER, [keys.public_jwk(other_key, OTHER_KID)]))
    cache.add_kdk("kdk-1", KDK)
    engine = Engine(cache)
    yield Env(engine, cache, key, other_key)
    engine.close()
    assert cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache.close()


def ctx(**overrides: Any) -> Context:
    fields: dict[str, Any] = dict(time=NOW, validator=Validator("bus-17", "vehicle"), zone="A", stop_area="SA1",
                                  mode_of_transport="bus", geo=Geo(59.33, 18.06), operator_pid=PID)
    fields.update(overrides)
    return Context(**fields)


def issue(key, *tickets, pid=PID, kid=KID, **header) -> bytes:
    return signer.mint(key, pid=pid, kid=kid, tickets=tickets or [ticket(f"T-{next(_counter)}")], **header)


def phone(container: bytes, *, at=NOW, did="phone-1", kid="kdk-1", kdk=KDK) -> bytes:
    return signer.device_sign(container, did=did, kid=kid, device_key=keys.derive_device_key(kdk, did), at=at)


def signed(key, header_bytes: bytes, payload_bytes: bytes) -> bytes:
    """A container whose issuer signature is computed over exactly these (hostile) bytes."""
    return mtb.container(mtb.body(header_bytes, payload_bytes,
                                  keys.es256_sign(key, mtb.signed_data(header_bytes, payload_bytes))))


def header(**overrides: Any) -> dict[str, Any]:
    return {"alg": "ES256", "iid": str(PID), "kid": KID, "miv": "1", **overrides}


def payload(*specs, pid=PID) -> bytes:
    return cbor.dumps({str(pid): [s.to_cbor_map() for s in (specs or [ticket(f"T-{next(_counter)}")])]})


def last_events(cache: Cache, n: int) -> list[dict[str, Any]]:
    rows = cache.conn.execute("SELECT body FROM outbox ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
    return [json.loads(r[0]) for r in reversed(rows)]


def still_works(env: Env) -> None:
    good = issue(env.key, ticket(f"GOOD-{next(_counter)}", zones=["A"]))
    decision = env.engine.validate_sync(good, ctx(validator=Validator(f"gate-{next(_counter)}")))
    assert (decision.event_result, decision.colour) == (0, "green"), decision.event_reason


def attack(env: Env, raw: bytes | str, expected: int, *, tickets: int = 1, reason: str | None = None,
           **context: Any) -> Decision:
    """Scan ``raw``; assert the result, the events in the outbox, and that the engine still works."""
    before = env.cache.outbox_count()
    decision = env.engine.validate_sync(raw, ctx(**context))
    assert decision.event_result == expected, decision.event_reason
    assert decision.colour == "red"
    if reason is not None:
        assert reason in decision.event_reason
    assert env.cache.outbox_count() == before + tickets
    recorded = last_events(env.cache, tickets)
    assert [e["localEventId"] for e in recorded] == [e["localEventId"] for e in decision.events]
    assert all(e["eventResult"] == expected for e in recorded)
    still_works(env)
    return decision


# --- size and shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["zlib", "zlib+base64url"])
def test_zlib_bomb(env, form):
    bomb = zlib.compress(b"\xa2" + b"\x00" * (50 * 1024 * 1024), 9)  # 50 MB of "MTB" in ~50 KB
    raw = bomb if form == "zlib" else mtb.b64url_encode(bomb)
    assert len(raw) < mtb.MAX_INPUT_BYTES  # it gets past the input cap: the inflate cap must hold
    decision = attack(env, raw, 1, reason="exceeds")  # the inflate cap stops it at 64 KiB
    assert decision.events[0]["ticketId"].startswith("unreadable:")


def test_zlib_bomb_of_a_valid_mtb_with_padding(env):
    """A real MTB followed by megabytes of zeros, compressed: still over the cap, still 1."""
    raw = zlib.compress(issue(env.key) + b"\x00" * (8 * 1024 * 1024), 9)
    attack(env, raw, 1, reason="exceeds")


@pytest.mark.parametrize("as_text", [False, True])
def test_ten_megabyte_input(env, as_text):
    big = b"\xa2" + os.urandom(10 * 1024 * 1024)
    raw: bytes | str = mtb.b64url_encode(big) if as_text else big
    decision = attack(env, raw, 1, reason="exceeds")  # the inflate cap stops it at 64 KiB
    assert decision.events[0]["ticketId"].startswith("unreadable:")


def test_deeply_nested_cbor_100k_arrays(env):
    deep = b"\x81" * 100_000 + b"\x00"
    attack(env, deep, 1)  # raw: 100 KB, over the input cap
    attack(env, zlib.compress(deep), 1, reason="exceeds")  # compressed: over the inflate cap
    # under both caps: 60k nested arrays, definite and indefinite, maps, and tags
    for blob in (b"\x81" * 60_000 + b"\x00", b"\x9f" * 60_000, b"\xa1\x61a" * 20_000 + b"\x00",
                 b"\xd8\x20" * 30_000 + b"\x00"):
        attack(env, mtb.container(blob), 1)  # as the "p" byte string
        attack(env, zlib.compress(b"\xa1\x61p" + blob), 1)  # as the container itself


@pytest.mark.parametrize("where", ["header", "payload"])
def test_deeply_nested_cbor_inside_signed_bytes(env, where):
    """The nesting sits inside a byte string the issuer really signed: the decoder must refuse
    it (1) without trusting the signature, and without a RecursionError."""
    deep = b"\x81" * 50_000 + b"\x00"
    deep_map = b"\xa1\x63alg" + b"\x81" * 50_000 + b"\x00"
    for blob in (deep, deep_map):
        hb, pb = (blob, payload()) if where == "header" else (cbor.dumps(header()), blob)
        attack(env, signed(env.key, hb, pb), 1)


def test_trailing_bytes_after_the_container(env):
    good = issue(env.key)
    attack(env, good + b"\x00", 1, reason="trailing")
    attack(env, good + good, 1, reason="trailing")
    attack(env, mtb.b64url_encode(good + b"\xff"), 1, reason="trailing")
    attack(env, zlib.compress(good + b"\x01"), 1, reason="trailing")


def test_trailing_bytes_inside_signed_header_and_payload(env):
    """Two decoders could read two different headers if trailing bytes were ignored."""
    hb, pb = cbor.dumps(header()), payload()
    attack(env, signed(env.key, hb + cbor.dumps({"kid": "other"}), pb), 1, reason="trailing")
    attack(env, signed(env.key, hb, pb + b"\x00"), 1, reason="trailing")


def test_duplicate_kid_in_the_issuer_header(env, participant_keys):
    """Two 'kid's, validly signed: one reader would take the first, another the last. Refused."""
    hb = b"\xa5" + b"".join(cbor.dumps(k) + cbor.dumps(v) for k, v in (
        ("alg", "ES256"), ("iid", str(PID)), ("kid", KID), ("miv", "1"), ("kid", OTHER_KID)))
    attack(env, signed(env.key, hb, payload()), 1, reason="Duplicate")


def test_duplicate_keys_elsewhere(env):
    hb, pb = cbor.dumps(header()), payload()
    body = mtb.body(hb, pb, keys.es256_sign(env.key, mtb.signed_data(hb, pb)))
    # the container with "p" twice
    two_p = b"\xa3" + cbor.dumps("v") + cbor.dumps(cbor.dumps("1")) + (cbor.dumps("p") + cbor.dumps(body)) * 2
    attack(env, two_p, 1, reason="Duplicate")
    # the payload with the pid key twice (two ticket lists: which one is "the" ticket?), validly signed
    dup_pid = (b"\xa2" + cbor.dumps(str(PID)) + cbor.dumps([ticket("T-a").to_cbor_map()])
               + cbor.dumps(str(PID)) + cbor.dumps([ticket("T-b").to_cbor_map()]))
    attack(env, signed(env.key, hb, dup_pid), 1, reason="Duplicate")


# --- algorithm and key confusion -------------------------------------------------------------

def _public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "RS256", "es256", "ES384", ""])
def test_alg_confusion_in_the_issuer_header(env, alg):
    hb, pb = cbor.dumps(header(alg=alg)), payload()
    data = mtb.signed_data(hb, pb)
    candidates = {
        "empty": b"",  # alg none: no signature at all
        "hmac-public-pem": hmac.new(_public_pem(env.key), data, hashlib.sha256).digest(),
        "hmac-public-jwk": hmac.new(json.dumps(keys.public_jwk(env.key, KID)).encode(), data, hashlib.sha256).digest(),
        "rsa-sized": os.urandom(256),
        "real-es256": keys.es256_sign(env.key, data),  # even a valid ES256 signature: alg says otherwise
    }
    for name, sig in candidates.items():
        attack(env, mtb.container(mtb.body(hb, pb, sig)), 5, reason="alg")


def test_valid_issuer_signature_with_a_swapped_payload(env):
    original = mtb.decode(issue(env.key, ticket("T-cheap", zones=["A"]))).issuer
    better = payload(ticket("T-cheap", zones=["A", "B", "C"], valid_until=NOW + timedelta(days=365)))
    attack(env, mtb.container(mtb.body(original.header_bytes, better, original.signature)), 5,
           reason="does not verify")
    # and the header swapped instead (device binding removed), payload kept
    bound = mtb.decode(issue(env.key, bind_device="phone-1", dsp=PID)).issuer
    attack(env, mtb.container(mtb.body(cbor.dumps(header()), bound.payload_bytes, bound.signature)), 5)


@pytest.mark.parametrize("sig", [b"\x00" * 64, b"\xff" * 64, b"\x00" * 63, b"\x00" * 65, b""])
def test_degenerate_signatures(env, sig):
    attack(env, mtb.container(mtb.body(cbor.dumps(header()), payload(), sig)), 5)


def test_key_of_another_participant(env):
    """Participant 5678 signs with its own (trusted) key but claims to issue for 1234 -> 5."""
    hb = cbor.dumps(header(kid=OTHER_KID))
    attack(env, signed(env.other_key, hb, payload()), 5, reason="unknown issuer key")
    # and 1234's key named under iid 5678: a real signature of 1234, claimed for 5678 -> 5
    hb = cbor.dumps(header(iid=str(OTHER)))
    attack(env, signed(env.key, hb, payload(pid=OTHER)), 5, reason="unknown issuer key")
    # sanity: 5678 issuing for itself with its own key is fine
    assert env.engine.validate_sync(issue(env.other_key, pid=OTHER, kid=OTHER_KID), ctx()).event_result == 0


def test_ticket_under_another_pid_than_the_issuer(env):
    """Validly signed by 1234, but the ticket sits under pid 5678 in the payload -> 1."""
    attack(env, signed(env.key, cbor.dumps(header()), payload(pid=OTHER)), 1, reason="under pid")


# --- device layer -----------------------------------------------------------------------------

def test_device_bound_mtb_with_device_signature_stripped(env):
    bound = issue(env.key, bind_device="phone-1", dsp=PID)
    assert env.engine.validate_sync(phone(bound), ctx(validator=Validator("pre-check"))).event_result == 0
    stripped = mtb.container(mtb.decode(phone(bound)).issuer.body)
    attack(env, stripped, 4, reason="no device signature")
    attack(env, issue(env.key, dsp=PID), 4)  # bound by dsp alone
    attack(env, issue(env.key, bind_device="phone-1"), 4)  # bound by dsi alone


def test_replayed_device_signed_mtb_outside_the_time_window(env):
    captured = phone(issue(env.key, bind_device="phone-1", dsp=PID), at=NOW)
    assert env.engine.validate_sync(captured, ctx(validator=Validator("door-1"))).event_result == 0
    attack(env, captured, 4, reason="from the validator clock", time=NOW + timedelta(seconds=31),
           validator=Validator("door-2"))
    attack(env, captured, 4, time=NOW + timedelta(hours=6), validator=Validator("door-3"))
    attack(env, captured, 4, time=NOW - timedelta(minutes=5), validator=Validator("door-4"))  # from the future


def test_device_signature_without_time_is_4_where_the_policy_requires_it(env):
    bound = issue(env.key, bind_device="phone-1", dsp=PID)
    inner = mtb.decode(bound).issuer.body
    dh = cbor.dumps({"alg": "HS256", "did": "phone-1", "kid": "kdk-1"})
    sig = keys.hs256(keys.derive_device_key(KDK, "phone-1"), mtb.signed_data(dh, inner))
    strict = Engine(env.cache, Policy(require_device_time_by_pid={str(PID): True}))
    try:
        decision = strict.validate_sync(mtb.container(mtb.body(dh, inner, sig)), ctx())
    finally:
        strict.close()
    assert decision.event_result == 4 and f"no time 't' (required for pid {PID})" in decision.event_reason


def test_unknown_kdk(env):
    attack(env, phone(issue(env.key), kid="kdk-unknown", kdk=os.urandom(32)), 6, reason="unknown device KDK")
    attack(env, phone(issue(env.key, bind_device="phone-1", dsp=PID), kid="kdk-unknown"), 6)


def test_device_signature_with_wrong_key_or_alg(env):
    attack(env, phone(issue(env.key), kdk=os.urandom(32)), 6, reason="does not verify")
    dh = cbor.dumps({"alg": "none", "did": "phone-1", "kid": "kdk-1", "t": "20260302T083000Z"})
    inner = mtb.decode(issue(env.key)).issuer.body
    attack(env, mtb.container(mtb.body(dh, inner, b"")), 4, reason="alg")


def test_device_layer_wrapping_another_device_layer(env):
    """Two device layers, each with a valid HMAC: the decoder allows exactly one -> 1."""
    once = phone(issue(env.key, bind_device="phone-1", dsp=PID))
    inner_device_body = mtb.decode(once).container  # {"v", "p"} -> take its "p"
    inner_p = cbor.loads_strict(inner_device_body)["p"]
    dh = cbor.dumps({"alg": "HS256", "did": "phone-1", "kid": "kdk-1", "t": "20260302T083000Z"})
    sig = keys.hs256(keys.derive_device_key(KDK, "phone-1"), mtb.signed_data(dh, inner_p))
    attack(env, mtb.container(mtb.body(dh, inner_p, sig)), 1, reason="did")


def test_issuer_header_with_did(env):
    # read as a device header, the payload is then no issuer MTB: 1 either way, never a pass
    attack(env, signed(env.key, cbor.dumps(header(did="phone-1")), payload()), 1)


# --- deny-list --------------------------------------------------------------------------------

def test_deny_listed_traveller_on_a_new_ticket(env):
    env.cache.deny("traveller", "trav-bad", NOW + timedelta(days=30), server_id=41)
    fresh = issue(env.key, ticket("T-brand-new", traveller_id="trav-bad", zones=["A"]))
    attack(env, fresh, 7, reason="traveller trav-bad")
    assert env.engine.validate_sync(issue(env.key, ticket("T-other", traveller_id="trav-good")),
                                    ctx(validator=Validator("x"))).event_result == 0


def test_deny_listed_token_on_a_new_ticket(env):
    env.cache.deny("token", "phone-stolen", NOW + timedelta(days=30))
    attack(env, phone(issue(env.key), did="phone-stolen"), 7, reason="token phone-stolen")


# --- integers, lengths, tags ------------------------------------------------------------------

def _bstr_len(n: int) -> bytes:
    return b"\x5b" + struct.pack(">Q", n)


@pytest.mark.parametrize("blob", [
    pytest.param(b"\xa2\x61v" + _bstr_len(2 ** 64 - 1) + b"x", id="bstr-len-2^64-1"),
    pytest.param(b"\xa2\x61v" + _bstr_len(2 ** 63) + b"x", id="bstr-len-2^63 (negative as int64)"),
    pytest.param(b"\xbb" + struct.pack(">Q", 2 ** 64 - 1), id="map-len-2^64-1"),
    pytest.param(b"\xa2\x61v\x9b" + struct.pack(">Q", 2 ** 63 + 5), id="array-len-negative-int64"),
    pytest.param(b"\xa2\x61v\x5c\x00", id="reserved-additional-info-28"),
    pytest.param(b"\xa2\x61v\x3b" + b"\xff" * 8 + b"\x61p\x40", id="negative-int-where-bstr-expected"),
    pytest.param(b"\xa2\x61v\x5f\x61a\xff\x61p\x40", id="indefinite-bstr-with-text-chunk"),
    pytest.param(b"\xa2\x61v\x5f\x41a", id="indefinite-bstr-never-closed"),
    pytest.param(b"\xa2\x61v\x7b" + struct.pack(">Q", 2 ** 64 - 1), id="text-len-2^64-1"),
])
def test_huge_and_negative_lengths(env, blob):
    attack(env, blob, 1)


@pytest.mark.parametrize("iid, expect_reference", [
    (2 ** 64 - 1, False),  # CBOR's largest unsigned int: a pid the server cannot take
    (-(2 ** 64), False),  # CBOR's most negative int
    ("9" * 5000, False),  # 5000 digits: int() refuses this, and once crashed the event
    ("\u00b2", False),  # superscript two: isdigit() says yes, int() says no
    ("\u0661\u0662", False),  # Arabic-Indic digits
    (str(2 ** 53 + 1), False),
    (str(PID), True),
])
def test_huge_and_odd_issuer_ids(env, iid, expect_reference):
    hb = cbor.dumps(header(iid=iid))
    pb = cbor.dumps({str(iid): [ticket(f"T-{next(_counter)}").to_cbor_map()]})
    sig = keys.es256_sign(keys.generate_es256_key(), mtb.signed_data(hb, pb))  # forged
    decision = attack(env, mtb.container(mtb.body(hb, pb, sig)), 5)
    assert ("mtbReference" in decision.events[0]) is expect_reference


def test_huge_integers_in_ticket_fields(env):
    spec = ticket("X").to_cbor_map()
    spec["c_md"] = [{"tid": 2 ** 64 - 1}, {"p_cid": -(2 ** 64)}]
    attack(env, signed(keys.generate_es256_key(), cbor.dumps(header()), cbor.dumps({str(PID): [spec]})), 5)
    # bignums (tags 2 and 3) are refused outright, even validly signed
    big = b"\xc2\x58\x20" + b"\xff" * 32
    hb = b"\xa4" + b"".join(cbor.dumps(k) + v for k, v in (
        ("alg", cbor.dumps("ES256")), ("iid", big), ("kid", cbor.dumps(KID)), ("miv", cbor.dumps("1"))))
    attack(env, signed(env.key, hb, payload()), 1, reason="tag")


def test_oversized_strings_do_not_make_events_the_server_refuses(env):
    """A 20 KB ticket id, did and pid key: the events stay within the server's limits."""
    from server.models import TicketEvent
    spec = ticket("T" * 20_000).to_cbor_map()
    forged = signed(keys.generate_es256_key(), cbor.dumps(header()), cbor.dumps({str(PID): [spec]}))
    decision = attack(env, phone(forged, did="d" * 20_000), 5)
    junk = cbor.dumps({"k" * 20_000: 1})
    decision2 = attack(env, signed(env.key, cbor.dumps(header()), junk), 1)
    for event in decision.events + decision2.events:
        TicketEvent.model_validate(event)
        assert len(event["ticketId"]) <= 200 and len(event["eventReason"]) <= 1000


TAG_HEADS = {0: b"\xc0", 1: b"\xc1", 2: b"\xc2", 32: b"\xd8\x20", 55799: b"\xd9\xd9\xf7", 999: b"\xd9\x03\xe7"}
TAG_VALUES = {0: cbor.dumps("2026-03-02T08:30:00Z"), 1: cbor.dumps(1772440200), 2: cbor.dumps(b"\x01")}


@pytest.mark.parametrize("where", ["vf", "nbf", "container", "header", "ticket"])
@pytest.mark.parametrize("tag", sorted(TAG_HEADS))
def test_tags_are_refused(env, where, tag):
    """Tag 1 (epoch datetime) in a time field, tag 0, a bignum, a URI, self-describe, an unknown
    tag: all refused with 1, even when the issuer signature over them is valid."""
    tagged = TAG_HEADS[tag] + TAG_VALUES.get(tag, cbor.dumps("x"))
    hb, pb = cbor.dumps(header()), payload()
    if where == "vf":
        rest = {k: v for k, v in ticket(f"T-{next(_counter)}").to_cbor_map().items() if k != "vf"}
        pb = (b"\xa1" + cbor.dumps(str(PID)) + b"\x81" + bytes([0xA0 + len(rest) + 1])
              + b"".join(cbor.dumps(k) + cbor.dumps(v) for k, v in rest.items()) + cbor.dumps("vf") + tagged)
    elif where == "nbf":
        assert hb[0] == 0xA4
        hb = b"\xa5" + hb[1:] + cbor.dumps("nbf") + tagged
    elif where == "header":
        hb = tagged  # the whole header is a tagged item
    elif where == "ticket":
        pb = b"\xa1" + cbor.dumps(str(PID)) + b"\x81" + tagged
    raw: bytes | str = signed(env.key, hb, pb)
    if where == "container":
        # a tag byte first is not a CBOR map head, so only the base64url path reaches the decoder
        raw = mtb.b64url_encode(TAG_HEADS[tag] + raw)
    attack(env, raw, 1)


def test_a_bundle_of_forged_tickets_gets_one_event_each(env):
    specs = [ticket(f"F-{i}") for i in range(5)]
    forged = signed(keys.generate_es256_key(), cbor.dumps(header()), payload(*specs))
    decision = attack(env, forged, 5, tickets=5)
    assert [e["ticketId"] for e in decision.events] == [f"F-{i}" for i in range(5)]


def test_empty_and_non_ascii_text_inputs(env):
    attack(env, b"", 1)
    attack(env, "", 1)
    attack(env, "välkommen ombord", 1)
    attack(env, "\ud800", 1)  # a lone surrogate from a broken reader driver
    attack(env, "=" * 10, 1)


@pytest.mark.parametrize("field, value", [
    ("nbf", "0001-01-01T00:00:00+14:00"),  # before year 1 once in UTC: once an OverflowError
    ("exp", "9999-12-31T23:59:59-14:00"),  # after year 9999 once in UTC
    ("vu", "9999-12-31T23:59:59-14:00"),
    ("vf", "0001-01-01T00:00:00+23:59"),
    ("vu", "20261332T000000Z"),
    ("vf", "2026-03-02T08:30:00"),  # no zone
    ("vu", 1772440200),  # a number, not text
    ("t", "0001-01-01T00:00:00+14:00"),
])
def test_time_fields_out_of_range_or_malformed(env, field, value):
    spec = ticket(f"T-{next(_counter)}").to_cbor_map()
    hdr = header()
    if field in ("nbf", "exp"):
        hdr[field] = value
    elif field in ("vf", "vu"):
        spec[field] = value
    raw = signed(env.key, cbor.dumps(hdr), cbor.dumps({str(PID): [spec]}))
    if field == "t":
        inner = mtb.decode(raw).issuer.body
        dh = cbor.dumps({"alg": "HS256", "did": "phone-1", "kid": "kdk-1", "t": value})
        raw = mtb.container(mtb.body(dh, inner, keys.hs256(keys.derive_device_key(KDK, "phone-1"),
                                                           mtb.signed_data(dh, inner))))
    attack(env, raw, 1)
