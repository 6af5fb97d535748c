"""Online validation (``POST /validation/{ticketId}?mtb=...`` without ``eventResult``): the
server decides, as a validator would, from the MTB the device read and the event it reports.

The checks run in the device agent's order (result codes of ``ticketEvent.eventResult``):
well-formed and naming the ticket (1), issuer signature (5), device signature (6), device
conditions: binding and signing time (4), validity at the event's time (3), deny list (7),
zone, stop area and mode of the event (2), travel speed from the MTB's nearest sighting (9).
The first that fails decides. Passback (8) is left to the device: it is about one door's
memory, which the server does not have.

Signatures go through :mod:`mtb.verifier` and distances through :mod:`mtb.travel`, as on the
device. The checks themselves are written here, small and pure, over what the handler looked
up (keys, deny-list verdict, last sighting); the agent's own check functions live in the agent
package, which the server must not import.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mtb import Mtb, Ticket
from mtb.keys import KeyStore
from mtb.travel import distance_m, velocity_kmh
from mtb.verifier import verify_device, verify_issuer

from ..models import TicketEvent

DEVICE_TIME_WINDOW_S = 30.0  # a device signature older than this is a screenshot (the agent's default)
MAX_SPEED_KMH = 200.0  # faster than any mode of transport: a copied ticket (the agent's default)


@dataclass(frozen=True)
class Verdict:
    code: int  # 0 valid, else the ticketEvent result code
    reason: str


@dataclass(frozen=True)
class Sighting:
    lat: float
    long: float
    time: datetime


@dataclass(frozen=True)
class Facts:
    """What the handler looked up for one decision."""

    keys: KeyStore
    denied: str | None  # e.g. "ticket T1" when a deny entry is in force
    sighting: Sighting | None  # the MTB's nearest earlier or later event with a position


def _ticket(mtb: Mtb, ticket_id: str) -> Ticket | None:
    return next((t for t in mtb.tickets if t.ticket_id == ticket_id), None)


def _format(mtb: Mtb, ticket: Ticket | None, ticket_id: str) -> Verdict | None:
    if ticket is None:
        return Verdict(1, f"the MTB carries no ticket {ticket_id}")
    if ticket.valid_from is None or ticket.valid_until is None:
        return Verdict(1, f"ticket {ticket_id} has no validity period (vf/vu)")
    if ticket.issuer_pid != mtb.issuer.header.iid:
        return Verdict(1, f"ticket {ticket_id} is under pid {ticket.issuer_pid}, issuer is {mtb.issuer.header.iid}")
    return None


def _device(mtb: Mtb, event: TicketEvent, keys: KeyStore) -> Verdict | None:
    check = verify_device(mtb, keys)
    if not check.ok:
        return Verdict(check.code, check.reason)
    if mtb.device is None:
        return None
    bound_to, did = mtb.issuer.header.dsi, mtb.device.header.did
    if bound_to is not None and did != bound_to:
        return Verdict(4, f"signed by device {did!r}, ticket is bound to {bound_to!r}")
    signed_at = mtb.device.header.t
    if signed_at is None:
        return Verdict(4, "device signature carries no time 't'")
    skew = abs((event.time - signed_at).total_seconds())
    if skew > DEVICE_TIME_WINDOW_S:
        return Verdict(4, f"device signature time is {skew:.0f} s from the event's time")
    return None


def _time(mtb: Mtb, ticket: Ticket, at: datetime) -> Verdict | None:
    header = mtb.issuer.header
    for bound, late, what in ((header.nbf, False, "issuer signature not valid before"),
                              (header.exp, True, "issuer signature expired at"),
                              (ticket.valid_from, False, "ticket valid from"),
                              (ticket.valid_until, True, "ticket expired at")):
        if bound is not None and (at > bound if late else at < bound):
            return Verdict(3, f"{what} {bound:%Y%m%dT%H%M%SZ}")
    if ticket.active is False:
        return Verdict(3, "ticket not activated")
    return None


def _spatial(ticket: Ticket, event: TicketEvent) -> Verdict | None:
    """Absent lists allow all; what the event does not say is not held against the passenger."""
    here = (("zone", ticket.zones, event.zone.zoneId if event.zone else None),
            ("stop area", ticket.stop_areas, event.stopArea.stopAreaId if event.stopArea else None),
            ("mode", ticket.modes, event.modeOfTransport))
    for what, allowed, value in here:
        if allowed is not None and value is not None and value not in allowed:
            return Verdict(2, f"{what} {value} not covered (ticket: {', '.join(allowed) or 'none'})")
    return None


def _fraud(event: TicketEvent, sighting: Sighting | None) -> Verdict | None:
    if sighting is None or event.geo is None:
        return None
    metres = distance_m(sighting.lat, sighting.long, event.geo.lat, event.geo.long)
    speed = velocity_kmh(metres, (event.time - sighting.time).total_seconds())
    if speed > MAX_SPEED_KMH:
        return Verdict(9, f"{metres / 1000:.1f} km from its nearest sighting: {speed:.0f} km/h > {MAX_SPEED_KMH:.0f}")
    return None


def decide(mtb: Mtb, ticket_id: str, event: TicketEvent, facts: Facts) -> Verdict:
    ticket = _ticket(mtb, ticket_id)
    failure = _format(mtb, ticket, ticket_id)
    if failure is None:
        assert ticket is not None
        issuer = verify_issuer(mtb, facts.keys)
        failure = (Verdict(issuer.code, issuer.reason) if not issuer.ok else None) \
            or _device(mtb, event, facts.keys) or _time(mtb, ticket, event.time) \
            or (Verdict(7, f"{facts.denied} is on the deny list") if facts.denied else None) \
            or _spatial(ticket, event) or _fraud(event, facts.sighting)
    return failure or Verdict(0, "valid")
