"""The checks as plain functions, every check's verdict, and the spec's order of results.

The order is written here as the spec writes it (mtb-format.md §5), not read from the code: a
check moved in ``checks.CHECKS`` (the deny list before the time check, fraud before passback)
fails ``test_every_pair_of_failures_gives_the_earlier_code``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import pytest

import mtb
from mtb import keys, signer
from mtb.verifier import SignatureCheck, verify_device, verify_issuer
from mtb import checks
from mtb.checks import Use
from agent.engine import Engine
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator

from .conftest import NOW, ticket

SPEC_ORDER = (1, 5, 6, 4, 3, 7, 2, 8, 9)  # mtb-format.md §5, as the spec says it
KDK = b"k" * 32
BUS = Validator("bus-17")
STOCKHOLM, GOTHENBURG = Geo(59.33, 18.06), Geo(57.71, 11.97)
VALID = SignatureCheck("valid", 0, "valid")


def ctx(**overrides: Any) -> Context:
    fields: dict[str, Any] = dict(time=NOW, validator=BUS, zone="A", stop_area="SA1", mode_of_transport="bus",
                                  geo=STOCKHOLM, operator_pid=1234)
    fields.update(overrides)
    return Context(**fields)


def use(device: str, ago_s: float, geo: Geo = STOCKHOLM, event_type: str = "validation") -> Use:
    return Use("T1", NOW - timedelta(seconds=ago_s), event_type, 0, device, "SA1", "A", geo.lat, geo.long)


def facts(**overrides: Any) -> checks.TicketFacts:
    fields: dict[str, Any] = dict(issuer=VALID, device=SignatureCheck("absent", 0, "no device signature"),
                                  denied=None, last_use_here=None, last_use=None)
    fields.update(overrides)
    return checks.TicketFacts(**fields)


@pytest.fixture()
def issued(issuer_key) -> mtb.Mtb:
    return mtb.decode(signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(zones=["A"], modes=["bus"])]))


def test_the_result_order_is_the_spec_order_and_lives_in_the_checks():
    assert checks.RESULT_ORDER == SPEC_ORDER
    assert [c.code for c in checks.CHECKS] == list(SPEC_ORDER)
    assert [checks.rank(code) for code in SPEC_ORDER] == list(range(9))


def test_a_valid_issuer_only_ticket_passes_or_is_not_applicable(issued):
    verdicts = checks.judge(issued, issued.tickets[0], ctx(), facts(), Policy())
    by_name = {c.name: v for c, v in zip(checks.CHECKS, verdicts)}
    assert {name: v.outcome for name, v in by_name.items()} == {
        "well-formed": "pass", "issuer signature": "pass", "device signature": "n/a", "device conditions": "n/a",
        "time": "pass", "deny list": "pass", "spatial": "pass", "passback": "pass", "fraud": "n/a"}
    assert by_name["fraud"].reason == "no earlier use with a position to compare"
    assert checks.result(verdicts) == (0, "valid")


def test_well_formed(issuer_key, issued):
    assert checks.well_formed(issued, issued.tickets[0], ctx(), facts(), Policy()) == checks.PASS
    foreign = mtb.decode(mtb.container(mtb.body(
        issued.issuer.header_bytes, mtb.cbor.dumps({"99": [ticket().to_cbor_map()]}), issued.issuer.signature)))
    verdict = checks.well_formed(foreign, foreign.tickets[0], ctx(), facts(), Policy())
    assert verdict == checks.Verdict("fail", "ticket T1 is under pid 99, issuer is 1234")


def test_signature_checks_report_the_verifier(issued):
    bad = SignatureCheck("invalid", 5, "issuer signature does not verify")
    assert checks.issuer_signature(issued, issued.tickets[0], ctx(), facts(issuer=bad), Policy()) == \
        checks.Verdict("fail", "issuer signature does not verify")
    assert checks.device_signature(issued, issued.tickets[0], ctx(), facts(), Policy()).outcome == "n/a"


def test_device_conditions(issuer_key):
    bound = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()], bind_device="phone-1", dsp=1234)
    key = keys.derive_device_key(KDK, "phone-2")
    other_phone = mtb.decode(signer.device_sign(bound, did="phone-2", kid="kdk-1", device_key=key, at=NOW))
    signed = facts(device=VALID)
    verdict = checks.device_conditions(other_phone, other_phone.tickets[0], ctx(), signed, Policy())
    assert verdict == checks.Verdict("fail", "signed by device 'phone-2', ticket is bound to 'phone-1'")
    key = keys.derive_device_key(KDK, "phone-1")
    late = mtb.decode(signer.device_sign(bound, did="phone-1", kid="kdk-1", device_key=key,
                                         at=NOW - timedelta(seconds=31)))
    assert checks.device_conditions(late, late.tickets[0], ctx(), signed, Policy()) == \
        checks.Verdict("fail", "device signature time is 31 s from the validator clock (window 30 s)")
    assert checks.device_conditions(late, late.tickets[0], ctx(), signed, Policy(device_time_window_s=60)) == \
        checks.PASS


@pytest.mark.parametrize("spec, header, reason", [
    ({"valid_until": NOW - timedelta(seconds=1)}, {}, "ticket expired at 20260302T082959Z"),
    ({"valid_from": NOW + timedelta(minutes=1)}, {}, "ticket valid from 20260302T083100Z"),
    ({}, {"exp": NOW - timedelta(minutes=1)}, "issuer signature expired at 20260302T082900Z"),
    ({}, {"nbf": NOW + timedelta(minutes=1)}, "issuer signature not valid before 20260302T083100Z"),
    ({"active": False}, {}, "ticket not activated"),
])
def test_time_validity(issuer_key, spec, header, reason):
    scanned = mtb.decode(signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(**spec)], **header))
    assert checks.time_validity(scanned, scanned.tickets[0], ctx(), facts(), Policy()) == checks.fail(reason)


def test_deny_list(issued):
    assert checks.deny_list(issued, issued.tickets[0], ctx(), facts(denied="traveller trav-1"), Policy()) == \
        checks.fail("traveller trav-1 is on the deny list")


def test_spatial(issued):
    t = issued.tickets[0]
    assert checks.spatial(issued, t, ctx(zone="B"), facts(), Policy()) == \
        checks.fail("zone B not covered (ticket: A)")
    assert checks.spatial(issued, t, ctx(mode_of_transport="ferry"), facts(), Policy()).outcome == "fail"
    unknown = checks.spatial(issued, t, ctx(zone=None, mode_of_transport=None), facts(), Policy())
    assert unknown.outcome == "n/a"  # nothing known here is held against the passenger


def test_passback(issued):
    t, policy = issued.tickets[0], Policy(passback_window_s=600)
    assert checks.passback(issued, t, ctx(), facts(last_use_here=use("bus-17", 599)), policy) == \
        checks.fail("accepted on this device 599 s ago (passback window 600 s)")
    assert checks.passback(issued, t, ctx(), facts(last_use_here=use("bus-17", 601)), policy) == checks.PASS
    inspection = checks.passback(issued, t, ctx(mode="inspection"), facts(last_use_here=use("bus-17", 5)), policy)
    assert inspection.outcome == "n/a"
    # another gate of the platform (a stop-area or operator-wide scope brings its uses)
    assert checks.passback(issued, t, ctx(), facts(last_use_here=use("gate-2", 30)), policy) == \
        checks.fail("accepted on gate-2 at stop area SA1 30 s ago (passback window 600 s)")


def test_fraud(issued):
    t = issued.tickets[0]
    far_and_soon = facts(last_use=use("tram-3", 600, GOTHENBURG))
    assert checks.fraud(issued, t, ctx(), far_and_soon, Policy()) == \
        checks.fail("396.7 km from its last use (on tram-3 at stop area SA1) in 600 s (2380 km/h > 200)")
    assert checks.fraud(issued, t, ctx(), facts(last_use=use("tram-3", 4 * 3600, GOTHENBURG)), Policy()) == \
        checks.PASS
    assert checks.fraud(issued, t, ctx(geo=None), far_and_soon, Policy()).outcome == "n/a"


def test_fraud_with_the_back_offices_velocity(issued):
    t = issued.tickets[0]
    assert checks.fraud(issued, t, ctx(), facts(server_velocity_kmh=300.0), Policy()) == \
        checks.fail("the back office's fraud check: 300 km/h from its last sighting (> 200)")
    assert checks.fraud(issued, t, ctx(), facts(server_velocity_kmh=80.0), Policy()) == checks.PASS
    # the device's own finding is the one reported when both see fraud
    both = facts(last_use=use("tram-3", 600, GOTHENBURG), server_velocity_kmh=300.0)
    assert checks.fraud(issued, t, ctx(), both, Policy()).reason.startswith("396.7 km from its last use")


def test_result_is_the_first_failure_and_notes_ride_along():
    verdicts = (checks.PASS, checks.PASS, checks.NO_DEVICE_LAYER, checks.Verdict("pass", "a note"),
                checks.fail("late"), checks.PASS, checks.fail("elsewhere"), checks.PASS, checks.PASS)
    assert checks.result(verdicts) == (3, "late")
    assert checks.result(verdicts[:4] + (checks.PASS,) * 5) == (0, "valid; a note")


# --- every pair of failures, through the engine -----------------------------------------------

@dataclass
class Scene:
    """A device-signed, device-bound ticket scanned on bus-17, and what to spoil in it."""

    spec: dict[str, Any] = field(default_factory=lambda: dict(zones=["A"]))
    payload_pid: str = "1234"
    other_issuer_key: bool = False
    kdk: bytes = KDK
    signed_at: Any = NOW
    deny: bool = False
    uses: list[Use] = field(default_factory=list)


SPOIL: dict[int, Callable[[Scene], None]] = {
    1: lambda s: setattr(s, "payload_pid", "99"),  # the ticket sits under another pid than the issuer's
    5: lambda s: setattr(s, "other_issuer_key", True),
    6: lambda s: setattr(s, "kdk", b"w" * 32),
    4: lambda s: setattr(s, "signed_at", NOW - timedelta(minutes=10)),  # a screenshot
    3: lambda s: s.spec.update(valid_until=NOW - timedelta(minutes=1)),
    7: lambda s: setattr(s, "deny", True),
    2: lambda s: s.spec.update(zones=["B"]),
    8: lambda s: s.uses.append(use("bus-17", 300)),
    9: lambda s: s.uses.append(use("tram-3", 120, GOTHENBURG)),  # 400 km away two minutes ago
}


def scan(scene: Scene, issuer_key) -> bytes:
    key = keys.generate_es256_key() if scene.other_issuer_key else issuer_key
    spec = ticket(**scene.spec)
    header = mtb.cbor.dumps({"alg": "ES256", "iid": "1234", "kid": "1234:k1", "miv": "1", "dsp": 1234,
                             "dsi": "phone-1"})
    payload = mtb.cbor.dumps({scene.payload_pid: [spec.to_cbor_map()]})
    issued = mtb.container(mtb.body(header, payload, keys.es256_sign(key, mtb.signed_data(header, payload))))
    return signer.device_sign(issued, did="phone-1", kid="kdk-1", at=scene.signed_at,
                              device_key=keys.derive_device_key(scene.kdk, "phone-1"))


def decide(cache, issuer_key, scene: Scene, **context: Any):
    if scene.deny:
        cache.deny("ticket", "T1", NOW + timedelta(days=1))
    cache.record([], scene.uses)
    engine = Engine(cache)
    try:
        return engine.validate_sync(scan(scene, issuer_key), ctx(**context))
    finally:
        engine.close()


@pytest.mark.parametrize("first, second", list(itertools.combinations(SPEC_ORDER, 2)))
def test_every_pair_of_failures_gives_the_earlier_code(cache, issuer_key, first, second):
    scene = Scene()
    SPOIL[first](scene)
    SPOIL[second](scene)
    decision = decide(cache, issuer_key, scene)
    [outcome] = decision.outcomes
    assert [check.code for check, _ in outcome.judged("fail")] == [first, second]  # exactly these two fail
    assert decision.event_result == first and decision.events[0]["eventResult"] == first


@pytest.mark.parametrize("code", [0, *SPEC_ORDER])
def test_every_single_failure_gives_its_own_code(cache, issuer_key, code):
    scene = Scene()
    if code:
        SPOIL[code](scene)
    decision = decide(cache, issuer_key, scene)
    assert decision.event_result == code, decision.event_reason
    assert [c.code for c, _ in decision.outcomes[0].judged("fail")] == ([code] if code else [])


def test_an_inspector_sees_every_failure_the_event_the_first(cache, issuer_key):
    scene = Scene()
    for code in (3, 7, 2):
        SPOIL[code](scene)
    decision = decide(cache, issuer_key, scene, mode="inspection")
    assert decision.event_result == 3 and decision.events[0]["eventReason"] == "ticket expired at 20260302T082900Z"
    lines = decision.inspector_message.splitlines()
    assert lines[1:] == ["  failed time (3): ticket expired at 20260302T082900Z",
                         "  failed deny list (7): ticket T1 is on the deny list",
                         "  failed spatial (2): zone A not covered (ticket: B)"]


def test_verdicts_need_no_cache_and_no_engine(issuer_key):
    """The checks are pure: the same facts give the same verdicts, whatever ran before."""
    raw = scan(Scene(), issuer_key)
    scanned = mtb.decode(raw)
    store = keys.KeyStore()
    store.add_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
    store.kdks["kdk-1"] = KDK
    given = facts(issuer=verify_issuer(scanned, store), device=verify_device(scanned, store))
    first = checks.judge(scanned, scanned.tickets[0], ctx(), given, Policy())
    assert first == checks.judge(scanned, scanned.tickets[0], ctx(), given, Policy())
    assert checks.result(first) == (0, "valid")
