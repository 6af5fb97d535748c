"""The offline decision: raw scanned bytes in, a recorded Decision out.

decode -> signatures -> every check's verdict per ticket (checks.CHECKS) -> ticketEvents,
which are committed to the outbox together with the usage history and made durable *before*
the decision is returned, so a passenger never sees green for an event that a power cut could
lose.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Protocol, TypeVar

from hardware.aio import Worker

import mtb as codec
from mtb import checks
from mtb.checks import Use
from mtb.policy import Policy, operating_day
from mtb.scan_context import Context
from mtb.ticket_event import event_problems
from mtb.timeutil import format_extended
from mtb.verifier import SignatureCheck, verify_device, verify_issuer

from .cache import Cache, ScanFacts
from .messages import OUT_OF_SERVICE, passenger_message

log = logging.getLogger(__name__)
T = TypeVar("T")


class Velocity(Protocol):
    """The back office's answer about one scan (``agent.sync.fraudcheck``), awaited on the
    engine's thread."""

    def wait(self) -> float | None:
        """km/h from the MTB's last sighting to this scan, or None: no answer within the budget."""


# A scan's records are built on every scan: slotted or plain, never frozen (five times the cost).
@dataclass(slots=True)
class TicketOutcome:
    """One ticket's result and the verdicts it comes from, in the order of ``checks.CHECKS``
    (none when the scan could not be read far enough to judge a ticket)."""

    ticket: codec.Ticket | None
    ticket_id: str
    code: int
    reason: str
    verdicts: tuple[checks.Verdict, ...] = ()

    def judged(self, outcome: checks.Outcome) -> list[tuple[checks.Check, checks.Verdict]]:
        """The checks that gave ``outcome`` ("fail", "pass" or "n/a"), in spec order."""
        return [(check, v) for check, v in zip(checks.CHECKS, self.verdicts) if v.outcome == outcome]


@dataclass
class Decision:
    event_result: int
    event_reason: str
    passenger_message: str
    events: list[dict[str, Any]]
    outcomes: list[TicketOutcome] = field(default_factory=list)
    out_of_service: bool = False  # recorded as refused without deciding (the device cannot decide now)

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
STALE_POSITION = " [position: last known, fix lost]"


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


def mtb_reference(scanned: codec.Mtb) -> dict[str, Any] | None:
    """The MTB as a ticketEvent and ``/fraudcheck`` name it (its issuer's pid and signature), or
    None when the server could not take those."""
    pid = _int_pid(scanned.issuer.header.iid)
    signature = codec.b64url_encode(scanned.issuer.signature)
    if pid is None or len(signature) > MAX_EVENT_ID:
        return None
    return {"pid": pid, "issuerSignature": signature}


def scan_event_fields(ctx: Context, policy: Policy, scanned: codec.Mtb | None) -> dict[str, Any]:
    """What every ticketEvent of one scan shares: when and which MTB (:func:`moment_members`),
    on what and where (:func:`place_members`)."""
    return {**moment_members(ctx, policy, scanned), **place_members(ctx)}


def moment_members(ctx: Context, policy: Policy, scanned: codec.Mtb | None) -> dict[str, Any]:
    """The members of a scan's ticketEvents that the engine makes itself: the time, the operating
    day and the MTB's references, each within what the server's ticketEvent accepts (an id that
    would not be is left out), so they need no check."""
    members: dict[str, Any] = {
        "time": format_extended(ctx.time),
        "operatingDayDate": (ctx.operating_day or operating_day(ctx.time, policy)).isoformat(),
    }
    if scanned is not None:
        reference = mtb_reference(scanned)
        if reference is not None:
            members["mtbReference"] = reference
        if scanned.device is not None:
            device_pid = _int_pid(scanned.issuer.header.dsp) or _int_pid(scanned.issuer.header.iid)
            did = scanned.device.header.did
            if device_pid is not None and 0 < len(did) <= MAX_EVENT_ID:
                members["deviceReference"] = {"pid": device_pid, "did": did}
    return members


def place_members(ctx: Context) -> dict[str, Any]:
    """The members of a scan's ticketEvents taken from the device's configuration and position:
    whether the server accepts them is for its model to say (:class:`PlaceCheck`)."""
    validator = ctx.validator
    members: dict[str, Any] = {
        "eventType": ctx.mode,
        "validator": {k: v for k, v in (("validatorId", validator.validator_id), ("location", validator.location),
                                        ("sublocation", validator.sublocation)) if v is not None},
    }
    geo = ctx.geo
    if geo is not None:
        members["geo"] = {k: v for k, v in (("lat", geo.lat), ("long", geo.long), ("alt", geo.alt)) if v is not None}
    operator = ctx.operator_pid
    if operator is not None:
        if ctx.stop_area is not None:
            members["stopArea"] = {"pid": operator, "stopAreaId": ctx.stop_area}
        if ctx.zone is not None:
            members["zone"] = {"pid": operator, "zoneId": ctx.zone}
        if ctx.service is not None:
            members["service"] = {k: v for k, v in (("pid", operator), ("serviceId", ctx.service.service_id),
                                                    ("tripId", ctx.service.trip_id),
                                                    ("blockId", ctx.service.block_id)) if v is not None}
    if ctx.mode_of_transport is not None:
        members["modeOfTransport"] = ctx.mode_of_transport
    return members


class PlaceCheck:
    """Whether the server's ticketEvent model takes a scan's :func:`place_members`, asked of the
    model only when the place changes (a gate stands in one place all day, a bus scans a queue of
    passengers between two fixes): the model is the most expensive step of building an event. A
    ``False`` sends the events through the cache's own check, which drops what the server would
    refuse and says so in the reason.

    A place is compared by value, with the types of its numbers: ``==`` takes 1, 1.0 and True for
    one another and the model does not (it refuses a latitude of true); everything else in a
    place is text, where the model refuses a number of any type alike."""

    _SOME_TIME = "2026-01-01T00:00:00.000Z"  # the members checked alone still make a whole event

    def __init__(self) -> None:
        self._last: tuple[Any, bool] = (None, False)  # the place and the answer, set in one step

    def conforming(self, ctx: Context, members: dict[str, Any]) -> bool:
        """``members``: :func:`place_members` of ``ctx``."""
        geo = ctx.geo
        place = (ctx.mode, ctx.validator, ctx.service, ctx.stop_area, ctx.zone, ctx.mode_of_transport,
                 ctx.operator_pid, type(ctx.operator_pid), geo,
                 None if geo is None else (type(geo.lat), type(geo.long), type(geo.alt)))
        checked, answer = self._last
        if place != checked:
            answer = not event_problems({"ticketId": "-", "time": self._SOME_TIME, **members})
            self._last = (place, answer)
        return answer


def ticket_event(shared: dict[str, Any], outcome: TicketOutcome, position_stale: bool = False) -> dict[str, Any]:
    """One BoB ticketEvent: the scan's ``shared`` fields (:func:`scan_event_fields`) and the ticket's result."""
    reason = outcome.reason + STALE_POSITION if position_stale else outcome.reason
    ticket_id = outcome.ticket_id
    return {
        "ticketId": ticket_id if len(ticket_id) <= MAX_EVENT_ID else unreadable_id(ticket_id),
        "localEventId": str(uuid.uuid4()),
        "eventResult": outcome.code,
        "eventReason": reason[:MAX_EVENT_REASON],
        **shared,
    }


def inspector_text(outcomes: list[TicketOutcome]) -> str:
    """Per ticket: its result and details, then every failing check and every note, in spec order."""
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
        lines += [f"  failed {check.name} ({check.code}): {v.reason}" for check, v in o.judged("fail")]
        lines += [f"  note {check.name}: {v.reason}" for check, v in o.judged("pass") if v.reason]
    return "\n".join(lines)


class Engine:
    """Runs scans against one cache. All cache work happens on one long-lived thread (a
    :class:`hardware.aio.Worker`), so the event loop never waits on SQLite or on signature
    verification; with full durability that thread fsyncs once per batch of queued work, before
    any result of the batch is handed back."""

    def __init__(self, cache: Cache, policy: Policy | None = None) -> None:
        self.cache = cache
        self.policy = policy or Policy()
        self._worker = Worker("engine", after_batch=cache.make_durable)
        self._place = PlaceCheck()

    def schedule(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` on the engine's thread without waiting (the agent queues the next
        scans while one is decided); the Future is done once the result is durable."""
        return self._worker.schedule(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a cache operation on the engine's thread (also used by sync)."""
        return await self._worker.run(fn, *args)

    async def validate(self, raw: bytes | str, ctx: Context, refuse: str | None = None,
                       velocity: Velocity | None = None) -> Decision:
        return await self.run(self.decide_and_record, raw, ctx, refuse, velocity)

    def close(self) -> None:
        self._worker.close()

    def validate_sync(self, raw: bytes | str, ctx: Context, refuse: str | None = None,
                      velocity: Velocity | None = None) -> Decision:
        """Decide, record and make durable, on the caller's thread (the CLI, tests, benches)."""
        decision = self.decide_and_record(raw, ctx, refuse, velocity)
        self.cache.make_durable()
        return decision

    def decide_and_record(self, raw: bytes | str, ctx: Context, refuse: str | None = None,
                          velocity: Velocity | None = None) -> Decision:
        """Decide and commit the events. Not yet durable: call it on the engine's thread (its
        batch ends in ``make_durable`` before the result is handed on) or use validate_sync.
        ``refuse`` (the device cannot decide: its clock is below the floor, its trust list too
        old) records an out-of-service decision instead: result 1 with that reason, so the refusal
        is on file too, and "out of service" for the passenger. ``velocity``: the back office's
        fraud check of this scan, asked for as it was read; waited for (up to its deadline)
        only when a ticket would be accepted."""
        scanned = None
        if refuse is not None:
            outcomes = [TicketOutcome(None, unreadable_id(raw), 1, refuse)]
        else:
            try:
                scanned = codec.decode(raw)
            except codec.MtbFormatError as exc:
                log.info("unreadable scan: %s", exc)
                outcomes = [TicketOutcome(None, unreadable_id(raw), 1, str(exc))]
        with self.cache.transaction():  # one write transaction: what passback read is what it records beside
            if scanned is not None:
                outcomes = self._judge(scanned, ctx, velocity)
            place = place_members(ctx)
            shared = {**moment_members(ctx, self.policy, scanned), **place}
            events = [ticket_event(shared, o, ctx.position_stale) for o in outcomes]
            geo = ctx.geo
            uses = [Use(o.ticket_id, ctx.time, ctx.mode, o.code, ctx.validator.validator_id, ctx.stop_area, ctx.zone,
                        geo.lat if geo else None, geo.long if geo else None, ctx.boot_id, ctx.monotonic)
                    for o in outcomes]
            self.cache.record(events, uses, conforming=self._place.conforming(ctx, place))
        # committed: only now may the passenger see the result
        first = min((o for o in outcomes if o.code), key=lambda o: checks.rank(o.code), default=None)
        if first is not None:
            code, reason = first.code, first.reason
        else:
            code = 0
            notes = dict.fromkeys(v.reason for o in outcomes for v in o.verdicts if v.outcome == "pass" and v.reason)
            reason = "; ".join([f"{len(outcomes)} ticket(s) valid", *notes])
        message = OUT_OF_SERVICE if refuse is not None else passenger_message(code, ctx.mode)
        return Decision(code, reason, message, events, outcomes, refuse is not None)

    def _judge(self, scanned: codec.Mtb, ctx: Context, velocity: Velocity | None = None) -> list[TicketOutcome]:
        if not scanned.tickets:
            return [TicketOutcome(None, unreadable_id(scanned.container), 1, "MTB carries no ticket")]
        keys = self.cache.keystore()
        issuer = verify_issuer(scanned, keys, self.policy.issuer_algs)
        device = verify_device(scanned, keys)
        tokens = checks.token_ids(scanned)
        outcomes = [self._ticket_outcome(scanned, t, ctx, issuer, device, tokens) for t in scanned.tickets]
        if velocity is None or not any(o.code == 0 for o in outcomes):
            return outcomes  # a refusal never waits for the back office
        kmh = velocity.wait()
        if kmh is None:
            return outcomes  # offline, or past the budget: decided with what the device has
        return [self._ticket_outcome(scanned, o.ticket, ctx, issuer, device, tokens, kmh)
                if o.code == 0 and o.ticket is not None else o for o in outcomes]

    def _ticket_outcome(self, scanned: codec.Mtb, ticket: codec.Ticket, ctx: Context, issuer: SignatureCheck,
                        device: SignatureCheck, tokens: list[str],
                        server_velocity_kmh: float | None = None) -> TicketOutcome:
        scope = self.policy.passback_scope
        found = self.cache.scan_facts(ticket.ticket_id, ctx.validator.validator_id,
                                      checks.deny_candidates(ticket, tokens), ctx.time,
                                      ctx.stop_area if scope == "stop-area" else None)
        last, here = with_other_devices(found, scope)
        hit = found.denied
        facts = checks.TicketFacts(issuer=issuer, device=device, denied=f"{hit[0]} {hit[1]}" if hit else None,
                                   last_use_here=here, last_use=last, server_velocity_kmh=server_velocity_kmh)
        verdicts = checks.judge(scanned, ticket, ctx, facts, self.policy)
        code, reason = checks.result(verdicts)
        return TicketOutcome(ticket, ticket.ticket_id, code, reason, verdicts)


def with_other_devices(found: ScanFacts, scope: str) -> tuple[Use | None, Use | None]:
    """(the ticket's latest accepted use anywhere, for fraud; the latest that makes a passback
    here). This device's own uses (``found.last``, ``found.here``), and other devices' as the
    uses feed last brought them: passback counts those the policy's ``scope`` takes in (a scope
    of stop areas needs to know where the device is; until it does, it is this device's alone)."""
    here = found.here
    if scope == "operator":
        here = latest(here, found.fleet_last)
    elif scope == "stop-area":
        here = latest(here, found.fleet_here)
    return latest(found.last, found.fleet_last), here


def latest(a: Use | None, b: Use | None) -> Use | None:
    """The later of two uses (either may be missing)."""
    if a is None or b is None:
        return a or b
    return b if b.time > a.time else a
