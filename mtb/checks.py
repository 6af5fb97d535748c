"""The checks of a scan, as pure functions in spec order (mtb-format.md §5): what a validator
decides, and what the server decides for an online validation, with the same code.

Each check takes the scan's facts and returns its :class:`Verdict`: pass, fail or not
applicable, with a reason. :data:`CHECKS` is the pipeline and the one statement of the spec's
order: a ticket's result is its first failing check in that order, and
:data:`RESULT_ORDER` (which result wins when a bundle's tickets fail differently) is read from
it. Adding a check is one function and one line.

Every check runs on every ticket, also after a failure: a gate needs only the first failure,
an inspector wants the whole picture. Everything a check needs from the cache is looked up
beforehand into :class:`TicketFacts`, so the checks do no I/O and are tested as plain functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from datetime import datetime

from .codec import Mtb, Ticket
from .policy import Policy
from .scan_context import Context
from .timeutil import format_basic
from .travel import distance_m
from .verifier import SignatureCheck

Outcome = Literal["pass", "fail", "n/a"]
DenyKind = Literal["ticket", "traveller", "token"]


# The records a scan makes (a Use per ticket, TicketFacts per ticket) are slotted, not frozen: a
# frozen dataclass costs five times as much to build, and nothing changes one once made.
@dataclass(slots=True)
class Use:
    """One recorded scan of a ticket: what passback, fraud and the inspector's view look at (a
    device's cache keeps them; the server's online validation makes one of the MTB's nearest
    sighting)."""

    ticket_id: str
    time: datetime
    event_type: str
    result: int
    device_id: str | None
    stop_area: str | None
    zone: str | None
    lat: float | None
    long: float | None
    boot_id: str | None = None
    monotonic: float | None = None


class Verdict(NamedTuple):
    """One check's answer for one ticket. A pass may carry a note the passenger's event and
    the inspector should see (e.g. that a device time was absent and allowed)."""

    outcome: Outcome
    reason: str = ""


PASS = Verdict("pass")


def fail(reason: str) -> Verdict:
    return Verdict("fail", reason)


def not_applicable(reason: str) -> Verdict:
    return Verdict("n/a", reason)


@dataclass(slots=True)
class TicketFacts:
    """What the cache knows about one ticket at scan time."""

    issuer: SignatureCheck
    device: SignatureCheck
    denied: str | None  # e.g. "ticket T1" when a deny entry is in force
    last_use_here: Use | None  # last accepted validation within the passback scope (this device, by default)
    last_use: Use | None  # last accepted use anywhere the cache has heard of (other devices' too)
    server_velocity_kmh: float | None = None  # the back office's fraud check (/fraudcheck), when it answered


CheckFn = Callable[[Mtb, Ticket, Context, TicketFacts, Policy], Verdict]


def token_ids(scanned: Mtb) -> list[str]:
    """A token is what carries the ticket: the phone (device id) or a card (its ``tpk`` key id)."""
    ids = [scanned.device.header.did] if scanned.device else []
    tpk = scanned.issuer.header.fields.get("tpk")
    if isinstance(tpk, dict) and isinstance(tpk.get("kid"), str):
        ids.append(tpk["kid"])
    return ids


def deny_candidates(ticket: Ticket, tokens: Sequence[str]) -> list[tuple[DenyKind, str]]:
    """What of a scanned ticket a deny-list entry may name: the ticket, its traveller, its tokens."""
    candidates: list[tuple[DenyKind, str]] = [("ticket", ticket.ticket_id)]
    if ticket.traveller_id:
        candidates.append(("traveller", ticket.traveller_id))
    return candidates + [("token", token) for token in tokens]


def well_formed(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    if ticket.valid_from is None or ticket.valid_until is None:
        return fail(f"ticket {ticket.ticket_id} has no validity period (vf/vu)")
    if ticket.issuer_pid != mtb.issuer.header.iid:
        return fail(f"ticket {ticket.ticket_id} is under pid {ticket.issuer_pid}, issuer is {mtb.issuer.header.iid}")
    return PASS


def issuer_signature(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    return PASS if facts.issuer.ok else fail(facts.issuer.reason)


NO_DEVICE_LAYER = not_applicable("no device signature")


def device_signature(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    if facts.device.code == 6:
        return fail(facts.device.reason)
    if mtb.device is None:
        return NO_DEVICE_LAYER
    if facts.device.code == 4:  # an algorithm not allowed: the HMAC was not even computed
        return not_applicable(f"not checked: {facts.device.reason}")
    return PASS


def device_wallet_pid(mtb: Mtb) -> str:
    """The participant whose wallet made the device signature: the MTB's device signature
    provider (``dsp``) when it names one, else its issuer."""
    header = mtb.issuer.header
    return header.dsp if header.dsp is not None else header.iid


def device_conditions(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    if facts.device.code == 4:
        return fail(facts.device.reason)
    if mtb.device is None:
        return NO_DEVICE_LAYER
    bound_to, did = mtb.issuer.header.dsi, mtb.device.header.did
    if bound_to is not None and did != bound_to:
        return fail(f"signed by device {did!r}, ticket is bound to {bound_to!r}")
    signed_at = mtb.device.header.t
    if signed_at is None:
        pid = device_wallet_pid(mtb)
        if policy.device_time_required(pid):
            return fail(f"device signature carries no time 't' (required for pid {pid})")
        return Verdict("pass", f"device signature carries no time 't' (allowed for pid {pid}: "
                               "a screenshot would pass too)")
    skew = abs((ctx.time - signed_at).total_seconds())
    if skew > policy.device_time_window_s:
        return fail(f"device signature time is {skew:.0f} s from the validator clock "
                    f"(window {policy.device_time_window_s:.0f} s)")
    return PASS


def time_validity(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    header, now = mtb.issuer.header, ctx.time
    if header.nbf is not None and now < header.nbf:
        return fail(f"issuer signature not valid before {format_basic(header.nbf)}")
    if header.exp is not None and now > header.exp:
        return fail(f"issuer signature expired at {format_basic(header.exp)}")
    if ticket.valid_from is not None and now < ticket.valid_from:
        return fail(f"ticket valid from {format_basic(ticket.valid_from)}")
    if ticket.valid_until is not None and now > ticket.valid_until:
        return fail(f"ticket expired at {format_basic(ticket.valid_until)}")
    if ticket.active is False:
        return fail("ticket not activated")
    return PASS


def deny_list(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    return fail(f"{facts.denied} is on the deny list") if facts.denied else PASS


NOTHING_TO_COMPARE = not_applicable("no zone, stop area or mode known here that the ticket limits")


def spatial(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    """Absent lists allow all; an unknown context (no zone yet) is not held against the passenger."""
    compared = False
    for what, allowed, here in (("zone", ticket.zones, ctx.zone), ("stop area", ticket.stop_areas, ctx.stop_area),
                                ("mode", ticket.modes, ctx.mode_of_transport)):
        if allowed is not None and here is not None:
            if here not in allowed:
                return fail(f"{what} {here} not covered (ticket: {', '.join(allowed) or 'none'})")
            compared = True
    return PASS if compared else NOTHING_TO_COMPARE


def seconds_between(earlier: Use, ctx: Context) -> float:
    """Monotonic time when both moments are of this boot (a wall-clock jump cannot bend it)."""
    if earlier.boot_id and earlier.boot_id == ctx.boot_id and None not in (earlier.monotonic, ctx.monotonic):
        return ctx.monotonic - earlier.monotonic  # type: ignore[operator]
    return (ctx.time - earlier.time).total_seconds()


NO_PASSBACK_IN_INSPECTION = not_applicable("inspection: passback is a gate's check")


def passback(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    if ctx.mode != "validation":
        return NO_PASSBACK_IN_INSPECTION
    if facts.last_use_here is None:
        return PASS
    earlier = facts.last_use_here
    elapsed = seconds_between(earlier, ctx)
    if 0 <= elapsed < policy.passback_window_s:  # a scan dated before the accepted one is no passback
        return fail(f"accepted {where(earlier, ctx)} {elapsed:.0f} s ago "
                    f"(passback window {policy.passback_window_s:.0f} s)")
    return PASS


def where(use: Use, ctx: Context) -> str:
    """Where an earlier use was, as a reason says it: this device, or another one and its stop area."""
    if use.device_id in (None, ctx.validator.validator_id):
        return "on this device"
    return f"on {use.device_id}" + (f" at stop area {use.stop_area}" if use.stop_area else "")


NO_EARLIER_POSITION = not_applicable("no earlier use with a position to compare")


def fraud(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Verdict:
    """Travel speed from the ticket's last use the device knows of, then the back office's
    velocity (from the MTB's last sighting it knows of) when it answered in time."""
    local = _travel_speed(ctx, facts.last_use, policy)
    server = facts.server_velocity_kmh
    if local.outcome == "fail" or server is None:
        return local
    if server > policy.max_speed_kmh:
        return fail(f"the back office's fraud check: {server:.0f} km/h from its last sighting "
                    f"(> {policy.max_speed_kmh:.0f})")
    return PASS


def _travel_speed(ctx: Context, last: Use | None, policy: Policy) -> Verdict:
    if last is None or ctx.geo is None or last.lat is None or last.long is None:
        return NO_EARLIER_POSITION
    metres = distance_m(last.lat, last.long, ctx.geo.lat, ctx.geo.long)
    if metres < policy.fraud_min_distance_m:
        return PASS
    elapsed = seconds_between(last, ctx)
    speed = math.inf if elapsed <= 0 else metres / elapsed * 3.6
    if speed > policy.max_speed_kmh:
        return fail(f"{metres / 1000:.1f} km from its last use ({where(last, ctx)}) in {max(elapsed, 0):.0f} s "
                    f"({'∞' if speed == math.inf else f'{speed:.0f}'} km/h > {policy.max_speed_kmh:.0f})")
    return PASS


@dataclass(frozen=True)
class Check:
    name: str
    code: int  # the ticketEvent result a failure of this check gives (spec §5)
    judge: CheckFn


# The spec's order (§5): when several checks fail, the first of them is the result.
CHECKS: tuple[Check, ...] = (
    Check("well-formed", 1, well_formed),
    Check("issuer signature", 5, issuer_signature),
    Check("device signature", 6, device_signature),
    Check("device conditions", 4, device_conditions),
    Check("time", 3, time_validity),
    Check("deny list", 7, deny_list),
    Check("spatial", 2, spatial),
    Check("passback", 8, passback),
    Check("fraud", 9, fraud),
)
RESULT_ORDER: tuple[int, ...] = tuple(check.code for check in CHECKS)
_RANK = {code: rank for rank, code in enumerate(RESULT_ORDER)}
_JUDGES = tuple(check.judge for check in CHECKS)


def judge(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> tuple[Verdict, ...]:
    """Every check's verdict on one ticket, in the order of :data:`CHECKS`."""
    return tuple([check(mtb, ticket, ctx, facts, policy) for check in _JUDGES])


def result(verdicts: Sequence[Verdict]) -> tuple[int, str]:
    """The ticket's result code and reason: the first failure in spec order, else 0 with the
    notes the passing checks made ("valid" when there are none)."""
    for check, verdict in zip(CHECKS, verdicts):
        if verdict.outcome == "fail":
            return check.code, verdict.reason
    notes = [v.reason for v in verdicts if v.outcome == "pass" and v.reason]
    return 0, "; ".join(["valid", *notes])


def rank(code: int) -> int:
    """Where a failing result code stands in the spec's order (lower is reported first)."""
    return _RANK[code]
