"""The checks of a scan, as pure functions in spec order (mtb-format.md §5).

Each check takes the scan's facts and returns ``None`` (pass) or a :class:`Failure`. The
pipeline is the list :data:`TICKET_CHECKS`; adding a check is one function and one line.
Everything a check needs from the cache is looked up beforehand into :class:`TicketFacts`,
so the checks themselves do no I/O and are tested as plain functions.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .cache import Use
from .context import Context, Policy
from mtb import Mtb, Ticket
from mtb.verifier import SignatureCheck

# When several checks fail, the first in this order is reported.
RESULT_ORDER = (1, 5, 6, 4, 3, 7, 2, 8, 9)


@dataclass(frozen=True)
class Failure:
    code: int
    reason: str


@dataclass(frozen=True)
class TicketFacts:
    """What the cache knows about one ticket at scan time."""

    issuer: SignatureCheck
    device: SignatureCheck
    denied: str | None  # e.g. "ticket T1" when a deny entry is in force
    last_use_here: Use | None  # last accepted validation of this ticket on this device
    last_use: Use | None  # last accepted use anywhere the cache has heard of


Check = Callable[[Mtb, Ticket, Context, TicketFacts, Policy], "Failure | None"]


def well_formed(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    if ticket.valid_from is None or ticket.valid_until is None:
        return Failure(1, f"ticket {ticket.ticket_id} has no validity period (vf/vu)")
    if ticket.issuer_pid != mtb.issuer.header.iid:
        return Failure(1, f"ticket {ticket.ticket_id} is under pid {ticket.issuer_pid}, issuer is {mtb.issuer.header.iid}")
    return None


def issuer_signature(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    return None if facts.issuer.ok else Failure(5, facts.issuer.reason)


def device_signature(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    return Failure(6, facts.device.reason) if facts.device.code == 6 else None


def device_conditions(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    if facts.device.code == 4:
        return Failure(4, facts.device.reason)
    if mtb.device is None:
        return None
    bound_to, did = mtb.issuer.header.dsi, mtb.device.header.did
    if bound_to is not None and did != bound_to:
        return Failure(4, f"signed by device {did!r}, ticket is bound to {bound_to!r}")
    signed_at = mtb.device.header.t
    if signed_at is None:
        return Failure(4, "device signature carries no time 't'") if policy.require_device_time else None
    skew = abs((ctx.time - signed_at).total_seconds())
    if skew > policy.device_time_window_s:
        return Failure(4, f"device signature time is {skew:.0f} s from the validator clock "
                          f"(window {policy.device_time_window_s:.0f} s)")
    return None


def time_validity(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    header = mtb.issuer.header
    if header.nbf is not None and ctx.time < header.nbf:
        return Failure(3, f"issuer signature not valid before {header.nbf:%Y%m%dT%H%M%SZ}")
    if header.exp is not None and ctx.time > header.exp:
        return Failure(3, f"issuer signature expired at {header.exp:%Y%m%dT%H%M%SZ}")
    if ticket.valid_from is not None and ctx.time < ticket.valid_from:
        return Failure(3, f"ticket valid from {ticket.valid_from:%Y%m%dT%H%M%SZ}")
    if ticket.valid_until is not None and ctx.time > ticket.valid_until:
        return Failure(3, f"ticket expired at {ticket.valid_until:%Y%m%dT%H%M%SZ}")
    if ticket.active is False:
        return Failure(3, "ticket not activated")
    return None


def blacklist(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    return Failure(7, f"{facts.denied} is on the deny list") if facts.denied else None


def spatial(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    """Absent lists allow all; an unknown context (no zone yet) is not held against the passenger."""
    for what, allowed, here in (("zone", ticket.zones, ctx.zone), ("stop area", ticket.stop_areas, ctx.stop_area),
                                ("mode", ticket.modes, ctx.mode_of_transport)):
        if allowed is not None and here is not None and here not in allowed:
            return Failure(2, f"{what} {here} not covered (ticket: {', '.join(allowed) or 'none'})")
    return None


def seconds_between(earlier: Use, ctx: Context) -> float:
    """Monotonic time when both moments are of this boot (a wall-clock jump cannot bend it)."""
    if earlier.boot_id and earlier.boot_id == ctx.boot_id and None not in (earlier.monotonic, ctx.monotonic):
        return ctx.monotonic - earlier.monotonic  # type: ignore[operator]
    return (ctx.time - earlier.time).total_seconds()


def passback(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    if ctx.mode != "validation" or facts.last_use_here is None:
        return None
    elapsed = seconds_between(facts.last_use_here, ctx)
    if 0 <= elapsed < policy.passback_window_s:  # a scan dated before the accepted one is no passback
        return Failure(8, f"accepted on this device {elapsed:.0f} s ago "
                          f"(passback window {policy.passback_window_s:.0f} s)")
    return None


def distance_m(lat1: float, long1: float, lat2: float, long2: float) -> float:
    """Great-circle distance (haversine) on a 6371 km sphere."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(long2 - long1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371000.0 * math.asin(math.sqrt(min(1.0, a)))


def fraud(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    last = facts.last_use
    if last is None or ctx.geo is None or last.lat is None or last.long is None:
        return None
    metres = distance_m(last.lat, last.long, ctx.geo.lat, ctx.geo.long)
    if metres < policy.fraud_min_distance_m:
        return None
    elapsed = seconds_between(last, ctx)
    speed = math.inf if elapsed <= 0 else metres / elapsed * 3.6
    if speed > policy.max_speed_kmh:
        return Failure(9, f"{metres / 1000:.1f} km from its last use in {max(elapsed, 0):.0f} s "
                          f"({'∞' if speed == math.inf else f'{speed:.0f}'} km/h > {policy.max_speed_kmh:.0f})")
    return None


TICKET_CHECKS: tuple[Check, ...] = (well_formed, issuer_signature, device_signature, device_conditions,
                                    time_validity, blacklist, spatial, passback, fraud)


def first_failure(mtb: Mtb, ticket: Ticket, ctx: Context, facts: TicketFacts, policy: Policy) -> Failure | None:
    for check in TICKET_CHECKS:
        failure = check(mtb, ticket, ctx, facts, policy)
        if failure is not None:
            return failure
    return None
