"""Online validation (``POST /validation/{ticketId}?mtb=...`` without ``eventResult``): the
server decides with the device's own checks (:mod:`mtb.checks`, every check in spec order,
the first failure decides), from the MTB the device read and the event it reports.

What a device knows from its cache the server looks up in its store: the deny list (the
ticket, its traveller, its tokens), and, for the fraud check, the MTB's sighting nearest in
time (an event with a position, from any device). The event gives the rest: its time (the
moment of the scan), zone, stop area, mode of transport and position. Passback has no door
memory here (each device keeps its own), so it passes; an inspection event is judged as an
inspection (no passback).
"""
from __future__ import annotations

from dataclasses import dataclass

from mtb import Mtb, checks
from mtb.checks import DenyKind, Use
from mtb.keys import KeyStore
from mtb.policy import Policy
from mtb.scan_context import Context, Geo, Validator
from mtb.verifier import verify_device, verify_issuer

from ..models import TicketEvent

POLICY = Policy()  # the agent's defaults: 30 s device time window, 200 km/h, 1 km, ES256 only


@dataclass(frozen=True)
class Verdict:
    code: int  # 0 valid, else the ticketEvent result code
    reason: str


def scan_context(event: TicketEvent, kind: str, caller: str) -> Context:
    """Where, when and as what the scan happened, as the event tells it."""
    validator = Validator(event.validator.validatorId if event.validator and event.validator.validatorId
                          else caller, event.validator.location if event.validator else None)
    return Context(time=event.time, validator=validator, mode="inspection" if kind == "inspection" else "validation",
                   geo=Geo(event.geo.lat, event.geo.long, event.geo.alt) if event.geo else None,
                   zone=event.zone.zoneId if event.zone else None,
                   stop_area=event.stopArea.stopAreaId if event.stopArea else None,
                   mode_of_transport=event.modeOfTransport)


def sighting_use(ticket_id: str, time: object, lat: float, long: float) -> Use:
    """The MTB's nearest stored sighting as the fraud check reads an earlier use."""
    return Use(ticket_id, time, "validation", 0, None, None, None, lat, long)  # type: ignore[arg-type]


def decide(scanned: Mtb, ticket_id: str, ctx: Context, keys: KeyStore, denied: str | None,
           sighting: Use | None) -> Verdict:
    """The verdict on ticket ``ticket_id`` of a scanned MTB."""
    ticket = next((t for t in scanned.tickets if t.ticket_id == ticket_id), None)
    if ticket is None:
        return Verdict(1, f"the MTB carries no ticket {ticket_id}")
    facts = checks.TicketFacts(issuer=verify_issuer(scanned, keys, POLICY.issuer_algs),
                               device=verify_device(scanned, keys), denied=denied, last_use_here=None,
                               last_use=sighting)
    return Verdict(*checks.result(checks.judge(scanned, ticket, ctx, facts, POLICY)))


def deny_candidates(scanned: Mtb, ticket_id: str) -> list[tuple[DenyKind, str]]:
    """What of the scanned ticket the deny list may name (the ticket id alone when the MTB does
    not carry it: the decision is a 1 then anyway)."""
    ticket = next((t for t in scanned.tickets if t.ticket_id == ticket_id), None)
    if ticket is None:
        return [("ticket", ticket_id)]
    return checks.deny_candidates(ticket, checks.token_ids(scanned))
