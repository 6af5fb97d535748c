"""The device-signature time 't' per wallet pid (issue 10.7), with the header real wallets send.

The only real device-signed MTB in public material (tests/vectors/pid60-device-signed.b64u)
has the device header {alg, did, kid}: no 't'. By default such a ticket is not refused; an
operator requires 't' per pid for wallets that send it.
"""
from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest

import mtb
from mtb import cbor, keys, signer, verifier
from mtb import checks
from agent.config import PolicySection
from agent.engine import Engine
from mtb.policy import Policy
from agent.runtime import Agent
from mtb.scan_context import Context, Geo, Validator
from hardware import SimulatedFeedback, SimulatedReader

from .conftest import NOW, VECTORS, ticket

KDK = b"k" * 32
NO_TIME_NOTE = "device signature carries no time 't' (allowed for pid 1234: a screenshot would pass too)"


def ctx(**overrides) -> Context:
    return Context(**{**dict(time=NOW, validator=Validator("bus-17"), zone="A", geo=Geo(59.33, 18.06)), **overrides})


def real_pid60() -> mtb.Mtb:
    return mtb.decode((VECTORS / "pid60-device-signed.b64u").read_text().strip())


def wallet_signed(issuer_key, *, dsp: int | None = 1234, at=None) -> bytes:
    """A device-bound ticket signed as the pid-60 wallet signs: a header of alg, did and kid only."""
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(zones=["A"])], bind_device="phone-1",
                         dsp=dsp)
    return signer.device_sign(issued, did="phone-1", kid="kdk-1", at=at,
                              device_key=keys.derive_device_key(KDK, "phone-1"))


def test_the_real_device_header_has_no_time_and_passes_by_default():
    scanned = real_pid60()
    assert set(scanned.device.header.fields) == {"alg", "did", "kid"} and scanned.device.header.t is None
    device = verifier.verify_device(scanned, keys.KeyStore(), b"1234")  # the vector's published key
    assert device.status == "valid"
    facts = checks.TicketFacts(issuer=verifier.SignatureCheck("valid", 0, ""), device=device, denied=None,
                               last_use_here=None, last_use=None)
    verdict = checks.device_conditions(scanned, scanned.tickets[0], ctx(), facts, Policy())
    assert verdict == checks.Verdict("pass", "device signature carries no time 't' (allowed for pid 60: "
                                             "a screenshot would pass too)")
    strict = Policy(require_device_time_by_pid={"60": True})
    assert checks.device_conditions(scanned, scanned.tickets[0], ctx(), facts, strict) == \
        checks.fail("device signature carries no time 't' (required for pid 60)")


def test_a_wallet_signature_without_time_is_valid_and_says_so(engine, issuer_key):
    raw = wallet_signed(issuer_key)
    assert set(mtb.decode(raw).device.header.fields) == set(real_pid60().device.header.fields)
    decision = engine.validate_sync(raw, ctx())
    assert decision.event_result == 0
    assert decision.events[0]["eventReason"] == f"valid; {NO_TIME_NOTE}"
    assert decision.event_reason == f"1 ticket(s) valid; {NO_TIME_NOTE}"
    assert f"  note device conditions: {NO_TIME_NOTE}" in decision.inspector_message.splitlines()


async def test_the_inspector_is_shown_the_absent_time(engine, issuer_key):
    handheld = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(),
                     validator=Validator("handheld-1"), mode="inspection")
    handheld.context = lambda: ctx(validator=handheld.validator, mode="inspection")  # type: ignore[method-assign]
    await handheld.handle_scan(wallet_signed(issuer_key))
    shown = handheld.feedback.last
    assert shown.colour == "green" and f"  note device conditions: {NO_TIME_NOTE}" in shown.lines


def test_required_per_pid_refuses_only_that_wallet(cache, issuer_key):
    engine = Engine(cache, Policy(require_device_time_by_pid={"1234": True}))
    try:
        refused = engine.validate_sync(wallet_signed(issuer_key), ctx())
        assert (refused.event_result, refused.event_reason) == \
            (4, "device signature carries no time 't' (required for pid 1234)")
        stamped = engine.validate_sync(wallet_signed(issuer_key, at=NOW - timedelta(seconds=5)),
                                       ctx(validator=Validator("gate-2")))
        assert stamped.event_result == 0 and stamped.event_reason == "1 ticket(s) valid"
    finally:
        engine.close()
    everyone = Engine(cache, Policy(require_device_time=True, require_device_time_by_pid={"1234": False}))
    try:
        assert everyone.validate_sync(wallet_signed(issuer_key), ctx(validator=Validator("gate-3"))).event_result == 0
    finally:
        everyone.close()


def test_the_wallet_is_the_device_signature_provider_when_the_mtb_names_one(cache, issuer_key):
    """dsp names whose app signs; without it the issuer's own wallet did."""
    engine = Engine(cache, Policy(require_device_time_by_pid={"77": True}))
    try:
        other_wallet = engine.validate_sync(wallet_signed(issuer_key, dsp=77), ctx())
        assert other_wallet.event_result == 4 and "required for pid 77" in other_wallet.event_reason
        own_wallet = engine.validate_sync(wallet_signed(issuer_key, dsp=None), ctx(validator=Validator("gate-2")))
        assert own_wallet.event_result == 0 and "allowed for pid 1234" in own_wallet.event_reason
    finally:
        engine.close()


def test_a_time_in_seconds_is_unreadable(engine, issuer_key):
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()])
    raw = signer.device_sign(issued, did="phone-1", kid="kdk-1", at=None, extra_header={"t": int(NOW.timestamp())},
                             device_key=keys.derive_device_key(KDK, "phone-1"))
    decision = engine.validate_sync(raw, ctx())
    assert (decision.event_result, decision.event_reason) == (1, "device header 't' is not text")


def test_the_config_names_pids_and_the_default_refuses_no_real_ticket():
    section = PolicySection.model_validate(tomllib.loads(
        'require_device_time = false\n[require_device_time_by_pid]\n"1234" = true\n"60" = false\n'))
    policy = section.policy()
    assert [policy.device_time_required(pid) for pid in ("1234", "60", "99")] == [True, False, False]
    assert PolicySection().policy().device_time_required("60") is False
    with pytest.raises(ValueError, match="require_device_time_by_pid"):
        PolicySection.model_validate({"require_device_time_by_pid": {"not-a-pid": True}})


def test_a_minted_device_header_keeps_its_time_when_given(issuer_key):
    raw = wallet_signed(issuer_key, at=NOW)
    header = cbor.loads_strict(mtb.decode(raw).device.header_bytes)
    assert header == {"alg": "HS256", "did": "phone-1", "kid": "kdk-1", "t": "20260302T083000Z"}
