"""The offline decision: raw scanned bytes in, a recorded Decision out.

decode -> signatures -> per-ticket checks (checks.TICKET_CHECKS) -> ticketEvents, which are
committed to the outbox together with the usage history *before* the decision is returned,
so a passenger never sees green for an event that a power cut could lose.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, TypeVar

import mtb as codec
from . import checks
from .cache import Cache, DenyKind, Use
from .context import Context, Policy, operating_day
from .messages import OUT_OF_SERVICE, passenger_message
from mtb.timeutil import format_extended
from mtb.verifier import SignatureCheck, verify_device, verify_issuer

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TicketOutcome:
    ticket: codec.Ticket | None
    ticket_id: str
    code: int
    reason: str


@dataclass(frozen=True)
class Decision:
    event_result: int
    event_reason: str
    passenger_message: str
    events: list[dict[str, Any]]
    outcomes: list[TicketOutcome] = field(default_factory=list)

    @cached_property
    def inspector_message(self) -> str:
        """Made on demand: a validator's hot path never formats what only an inspector reads."""
        return inspector_text(self.outcomes)

    @property
    def accepted(self) -> bool:
        return self.event_result == 0

    @property
    def colour(self) -> str:
        return "green" if self.accepted else "red"

    def to_json(self) -> dict[str, Any]:
        return {"eventResult": self.event_result, "eventReason": self.event_reason,
                "passengerMessage": self.passenger_message, "inspectorMessage": self.inspector_message,
                "events": self.events}


# What the server's ticketEvent accepts (server/models.py): ids and signatures up to 200 chars,
# reasons up to 1000. Hostile MTBs carry longer ones; an event the server refuses would block
# the upload of its whole batch, so such values are hashed, dropped or cut here.
MAX_EVENT_ID, MAX_EVENT_REASON = 200, 1000


def unreadable_id(raw: bytes | str) -> str:
    """A stable id for an unreadable scan, so repeated junk from one phone can be told apart."""
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return "unreadable:" + hashlib.sha256(data).hexdigest()[:16]


def _int_pid(value: str | None) -> int | None:
    """A pid as the server's ticketEvent wants it (0..2**53), or None. ``isdigit`` alone would
    pass '²' (int() refuses it) and 5000-digit text (int() refuses that too): both crashed a scan."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 16:
        return None
    pid = int(value)
    return pid if pid <= 2 ** 53 else None


def ticket_event(ctx: Context, policy: Policy, outcome: TicketOutcome, scanned: codec.Mtb | None) -> dict[str, Any]:
    """One BoB ticketEvent."""
    event: dict[str, Any] = {
        "ticketId": outcome.ticket_id if len(outcome.ticket_id) <= MAX_EVENT_ID else unreadable_id(outcome.ticket_id),
        "localEventId": str(uuid.uuid4()),
        "time": format_extended(ctx.time),
        "eventType": ctx.mode,
        "eventResult": outcome.code,
        "eventReason": outcome.reason,
        "operatingDayDate": (ctx.operating_day or operating_day(ctx.time, policy)).isoformat(),
        "validator": {k: v for k, v in (("validatorId", ctx.validator.validator_id),
                                        ("location", ctx.validator.location),
                                        ("sublocation", ctx.validator.sublocation)) if v is not None},
    }
    if scanned is not None:
        pid = _int_pid(scanned.issuer.header.iid)
        signature = codec.b64url_encode(scanned.issuer.signature)
        if pid is not None and len(signature) <= MAX_EVENT_ID:
            event["mtbReference"] = {"pid": pid, "issuerSignature": signature}
        if scanned.device is not None:
            device_pid = _int_pid(scanned.issuer.header.dsp) or pid
            did = scanned.device.header.did
            if device_pid is not None and 0 < len(did) <= MAX_EVENT_ID:
                event["deviceReference"] = {"pid": device_pid, "did": did}
    if ctx.geo is not None:
        event["geo"] = {k: v for k, v in (("lat", ctx.geo.lat), ("long", ctx.geo.long), ("alt", ctx.geo.alt))
                        if v is not None}
    operator = ctx.operator_pid
    if ctx.stop_area is not None and operator is not None:
        event["stopArea"] = {"pid": operator, "stopAreaId": ctx.stop_area}
        if ctx.next_stop_area:
            event["stopArea"]["nextStopAreaId"] = ctx.next_stop_area
    if ctx.zone is not None and operator is not None:
        event["zone"] = {"pid": operator, "zoneId": ctx.zone}
    if ctx.service is not None and operator is not None:
        event["service"] = {k: v for k, v in (("pid", operator), ("serviceId", ctx.service.service_id),
                                              ("tripId", ctx.service.trip_id), ("blockId", ctx.service.block_id))
                            if v is not None}
    if ctx.mode_of_transport is not None:
        event["modeOfTransport"] = ctx.mode_of_transport
    if ctx.position_stale:
        event["eventReason"] += " [position: last known, fix lost]"
    event["eventReason"] = event["eventReason"][:MAX_EVENT_REASON]
    return event


def inspector_text(outcomes: list[TicketOutcome]) -> str:
    lines = []
    for o in outcomes:
        t = o.ticket
        status = "VALID" if o.code == 0 else f"INVALID ({o.code}: {o.reason})"
        if t is None:
            lines.append(f"{o.ticket_id}: {status}")
            continue
        validity = (f"{t.valid_from:%Y-%m-%d %H:%M}-{t.valid_until:%Y-%m-%d %H:%M} UTC"
                    if t.valid_from and t.valid_until else "no validity period")
        details = [f"product {t.product_id}" if t.product_id else None, t.category,
                   f"zones {','.join(t.zones)}" if t.zones else "all zones",
                   f"traveller {t.traveller_id}" if t.traveller_id else None, validity]
        lines.append(f"ticket {t.ticket_id}: {status}; " + "; ".join(d for d in details if d))
    return "\n".join(lines)


class Engine:
    """Runs scans against one cache. All cache work happens on one worker thread, so the
    event loop never waits on SQLite or on signature verification."""

    def __init__(self, cache: Cache, policy: Policy | None = None) -> None:
        self.cache = cache
        self.policy = policy or Policy()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a cache operation on the engine's thread (also used by sync)."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def validate(self, raw: bytes | str, ctx: Context, refuse: str | None = None) -> Decision:
        return await self.run(self.validate_sync, raw, ctx, refuse)

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    def validate_sync(self, raw: bytes | str, ctx: Context, refuse: str | None = None) -> Decision:
        """Decide and record. ``refuse`` (the device cannot decide: its clock is below the floor,
        its trust list too old) records an out-of-service decision instead: result 1 with that
        reason, so the refusal is on file too, and "out of service" for the passenger."""
        with self.cache.transaction():  # passback's reads and the recording are one write transaction
            if refuse is None:
                outcomes, scanned = self._evaluate(raw, ctx)
            else:
                outcomes, scanned = [TicketOutcome(None, unreadable_id(raw), 1, refuse)], None
            events = [ticket_event(ctx, self.policy, o, scanned) for o in outcomes]
            uses = [Use(o.ticket_id, ctx.time, ctx.mode, o.code, ctx.validator.validator_id, ctx.stop_area, ctx.zone,
                        ctx.geo.lat if ctx.geo else None, ctx.geo.long if ctx.geo else None, ctx.boot_id,
                        ctx.monotonic) for o in outcomes]
            self.cache.record(events, uses)
        # committed: only now may the passenger see the result
        failing = [o for o in outcomes if o.code != 0]
        first = min(failing, key=lambda o: checks.RESULT_ORDER.index(o.code)) if failing else None
        code = first.code if first else 0
        reason = first.reason if first else f"{len(outcomes)} ticket(s) valid"
        message = OUT_OF_SERVICE if refuse is not None else passenger_message(code, ctx.mode)
        return Decision(code, reason, message, events, outcomes)

    def _evaluate(self, raw: bytes | str, ctx: Context) -> tuple[list[TicketOutcome], codec.Mtb | None]:
        try:
            scanned = codec.decode(raw)
        except codec.MtbFormatError as exc:
            log.info("unreadable scan: %s", exc)
            return [TicketOutcome(None, unreadable_id(raw), 1, str(exc))], None
        if not scanned.tickets:
            return [TicketOutcome(None, unreadable_id(scanned.container), 1, "MTB carries no ticket")], scanned
        keys = self.cache.keystore()
        issuer = verify_issuer(scanned, keys, self.policy.issuer_algs)
        device = verify_device(scanned, keys)
        return [self._ticket_outcome(scanned, t, ctx, issuer, device) for t in scanned.tickets], scanned

    def _ticket_outcome(self, scanned: codec.Mtb, ticket: codec.Ticket, ctx: Context, issuer: SignatureCheck,
                        device: SignatureCheck) -> TicketOutcome:
        uses = self.cache.accepted_uses(ticket.ticket_id)
        here = next((u for u in uses if u.device_id == ctx.validator.validator_id and u.event_type == "validation"),
                    None)
        facts = checks.TicketFacts(issuer=issuer, device=device, denied=self._denied(scanned, ticket, ctx),
                                   last_use_here=here, last_use=uses[0] if uses else None)
        failure = checks.first_failure(scanned, ticket, ctx, facts, self.policy)
        if failure is None:
            return TicketOutcome(ticket, ticket.ticket_id, 0, "valid")
        return TicketOutcome(ticket, ticket.ticket_id, failure.code, failure.reason)

    def _denied(self, scanned: codec.Mtb, ticket: codec.Ticket, ctx: Context) -> str | None:
        candidates: list[tuple[DenyKind, str]] = [("ticket", ticket.ticket_id)]
        if ticket.traveller_id:
            candidates.append(("traveller", ticket.traveller_id))
        candidates += [("token", token) for token in token_ids(scanned)]
        hit = self.cache.denied(candidates, ctx.time)
        return f"{hit[0]} {hit[1]}" if hit else None


def token_ids(scanned: codec.Mtb) -> list[str]:
    """A token is what carries the ticket: the phone (device id) or a card (its ``tpk`` key id)."""
    ids = [scanned.device.header.did] if scanned.device else []
    tpk = scanned.issuer.header.fields.get("tpk")
    if isinstance(tpk, dict) and isinstance(tpk.get("kid"), str):
        ids.append(tpk["kid"])
    return ids
