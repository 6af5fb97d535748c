"""The employer side's work: applying an HR sync, the monthly roll-over (status refresh,
issuing, documents), and the revocations cancellations scheduled.

A :class:`B2B` holds what that work needs: the server :class:`~server.context.Context` (the
same keyring, store and issuing path as the Ticket API), the B2B store and settings. Changes to
employees go through one asyncio lock per process, so a sync and the roll-over never write the
same employee from two stale reads; the roll-over takes it per employee, so a sync waits at most
one issuing.

Monthly tickets are issued through the Ticket API's own path: a manifest signed by the server
(:func:`server.ticket_api.manifest.create`) and :func:`server.ticket_api.tickets.issue`, with a
``requestId`` per employee, month and attempt, so a roll-over interrupted between issuing and
recording re-finds the same ticket. Cancellations revoke through
:func:`server.ticket_api.tickets.apply` (``revoke``), which puts the ticket on the deny list every
validator syncs.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mtb import b64url_decode

from ..auth import Principal
from ..context import Context
from ..errors import ApiError
from ..models import Fare, ManifestCall, TicketHolder
from ..ticket_api import manifest, tickets
from . import documents, reconcile, roster
from .calendar import Month, local_date, month_validity, start_of, zone
from .config import B2BConfig
from .reconcile import Change, SyncPlan
from .records import Company, DuplicateSync, Employee, Integration, TicketRef
from .store import B2BStore
from .subscription import next_ticket_at, ticket_month_due

log = logging.getLogger("server.b2b")
ACTOR = "b2b-rollover"


@dataclass
class B2B:
    ctx: Context
    config: B2BConfig
    store: B2BStore
    tz: ZoneInfo
    limiter: Any = None  # server.auth.ratelimit.RateLimiter for the API keys, or None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # new webhook events: send now

    @classmethod
    def create(cls, ctx: Context, limiter: Any = None) -> "B2B":
        config: B2BConfig = ctx.config.b2b
        return cls(ctx, config, B2BStore(ctx.store.db), zone(config.timezone), limiter)

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.ctx.run(fn, *args, **kwargs)

    def today(self, now: datetime) -> date:
        return local_date(now, self.tz)

    def principal(self) -> Principal:
        return Principal(sub=ACTOR, pid=self.ctx.keyring.pid, role="admin", exp=0, key=ACTOR)


def revoke_time(b2b: B2B, change: Change) -> datetime | None:
    """When a cancellation revokes the employee's tickets: the start of ``cancelledAt`` (the
    first day not covered) in the operator's zone; None when there is no cancellation."""
    cancelled_at = change.dates.cancelled_at
    return None if cancelled_at is None else start_of(cancelled_at, b2b.tz)


# --- HR sync ----------------------------------------------------------------------------------

class SyncReplay(Exception):
    """The same ``syncId`` with the same body: nothing to do (204)."""


async def sync(b2b: B2B, integration: Integration, body: Any, now: datetime) -> SyncPlan:
    """Validate and apply one HR sync; ApiError 422 (bad rows, empty roster), 409 (a reused
    syncId with another body); SyncReplay for an exact repeat."""
    try:
        head, rows = roster.parse(body)
    except roster.RosterError as exc:
        await b2b.run(b2b.store.record_sync_error, integration.id, exc.details, now)
        raise ApiError(422, str(exc), details=exc.details) from None
    digest = roster.body_hash(body)
    await _check_sync_id(b2b, integration.id, head.syncId, digest)
    company = await b2b.run(b2b.store.get_company, integration.company_id)
    today = b2b.today(now)
    async with b2b.lock:
        employees = await b2b.run(b2b.store.integration_employees, integration.id)
        if not rows and not head.allowEmptyRoster and any(e.status != "cancelled" for e in employees):
            raise ApiError(422, "employees: an empty roster would offboard every employee; send "
                                "\"allowEmptyRoster\": true if that is meant", code="empty_roster",
                           details=[{"field": "employees", "message": "empty roster refused"}])
        plan = reconcile.reconcile(rows, [e.current() for e in employees], today, company.plan)
        last = {e.hr_id: (e.ticket.month if e.ticket else None) for e in employees}
        next_ticket = {c.hr_id: next_ticket_at(c.dates, today, last.get(c.hr_id)) for c in plan.changes}
        revoke_at = {c.hr_id: revoke_time(b2b, c) for c in plan.changes}
        try:
            await b2b.run(b2b.store.apply_sync, integration, head.syncId, digest, plan, next_ticket, revoke_at, now)
        except DuplicateSync:
            await _check_sync_id(b2b, integration.id, head.syncId, digest)
            raise
    await revoke_due(b2b, now)  # an offboarded employee's ticket is revoked now, not at the next roll-over
    b2b.wake.set()
    return plan


async def _check_sync_id(b2b: B2B, integration_id: int, sync_id: str, digest: str) -> None:
    earlier = await b2b.run(b2b.store.sync_hash, integration_id, sync_id)
    if earlier == digest:
        raise SyncReplay(sync_id)
    if earlier is not None:
        raise ApiError(409, f"syncId {sync_id!r} was already used with another body", code="sync_id_reused",
                       details=[{"field": "syncId", "message": "already used with another body"}])


# --- roll-over --------------------------------------------------------------------------------

@dataclass
class RolloverResult:
    refreshed: int = 0
    issued: int = 0
    documents: int = 0
    revoked: int = 0
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"refreshed": self.refreshed, "issued": self.issued, "documents": self.documents,
                "revoked": self.revoked, "errors": self.errors}


async def rollover(b2b: B2B, now: datetime) -> RolloverResult:
    """The job: move every subscription to ``now`` (dates reached), issue the month's ticket and
    document to every employee covered today who has none, and carry out due revocations.
    Idempotent: a second run at the same moment does nothing."""
    result = RolloverResult()
    today = b2b.today(now)
    async with b2b.lock:
        employees = await b2b.run(b2b.store.live_employees)
        changes = []
        for employee in employees:
            change = reconcile.refresh(employee.current(), today)
            if change is not None:
                last = employee.ticket.month if employee.ticket else None
                changes.append((employee.company_id, change, next_ticket_at(change.dates, today, last),
                                revoke_time(b2b, change)))
        if changes:
            await b2b.run(b2b.store.apply_refresh, changes, now)
        result.refreshed = len(changes)
    due = {c.employee_id for _, c, _, _ in changes if ticket_month_due(c.dates, today)}
    due |= {e.id for e in employees if ticket_month_due(e.dates, today)}
    companies: dict[int, Company] = {}
    for employee_id in sorted(due):
        try:
            if await _issue_month(b2b, employee_id, companies, now):
                result.issued += 1
                result.documents += 1
        except ApiError as exc:
            log.error("roll-over: employee %s: %s", employee_id, exc.message)
            result.errors.append(f"employee {employee_id}: {exc.message}")
    result.revoked = await revoke_due(b2b, now)
    b2b.wake.set()
    return result


async def _issue_month(b2b: B2B, employee_id: int, companies: dict[int, Company], now: datetime) -> bool:
    today = b2b.today(now)
    month = Month.of(today)
    async with b2b.lock:
        employee = await _employee_by_id(b2b, employee_id)
        if employee is None or ticket_month_due(employee.dates, today) != month or (
                employee.ticket is not None and employee.ticket.month >= month):
            return False
        if employee.company_id not in companies:
            companies[employee.company_id] = await b2b.run(b2b.store.get_company, employee.company_id)
        company = companies[employee.company_id]
        ref, mtb_text = await _issue_ticket(b2b, company, employee, month, now)
        pdf = await asyncio.to_thread(documents.render, documents.TicketDocument(
            title=f"{month.label()} Job Ticket", company=company.name,
            employee_name=f"{employee.profile.first_name} {employee.profile.last_name}", ticket_id=ref.ticket_id,
            valid_from=ref.valid_from, valid_until=ref.valid_until, timezone=b2b.config.timezone,
            zones=company.product.zones, modes=company.product.modes, barcode=b64url_decode(mtb_text)),
            b2b.config.document_font)
        cancellation = employee.dates.cancelled_at
        document = await b2b.run(b2b.store.record_ticket, employee, ref, now, f"{month.label()} Job Ticket", pdf,
                                 next_ticket_at(employee.dates, today, month),
                                 start_of(cancellation, b2b.tz) if cancellation else None)
        return document is not None


async def _employee_by_id(b2b: B2B, employee_id: int) -> Employee | None:
    rows = await b2b.run(b2b.store.db.query, "SELECT company_id FROM b2b_employees WHERE id = ?", (employee_id,))
    return await b2b.run(b2b.store.get_employee, rows[0]["company_id"], employee_id) if rows else None


async def _issue_ticket(b2b: B2B, company: Company, employee: Employee, month: Month,
                        now: datetime) -> tuple[TicketRef, str]:
    """The month's MTB, through POST /ticket's own path: valid from now (or the month's start,
    if later) to the end of the month in the operator's zone."""
    ctx = b2b.ctx
    now = now.replace(microsecond=0)
    validity = month_validity(month, b2b.tz)
    valid_from = max(validity.valid_from, now)
    seconds = int((validity.valid_until - valid_from).total_seconds())
    if seconds < 60:
        raise ApiError(409, f"less than a minute of {month} is left; its ticket is not issued", code="month_over")
    product = company.product
    item = manifest.Item(product=manifest.Product(productId=product.product_id, category=product.category),
                         fare=Fare.model_validate(product.fare), validitySeconds=seconds,
                         zones=list(product.zones) or None, modes=list(product.modes) or None)
    template, _ = manifest.create(ctx.keyring, [item], now, ctx.config.manifest_lifetime_seconds)
    attempt = await b2b.run(b2b.store.tickets_issued, employee.id, month)
    name = f"{employee.profile.first_name} {employee.profile.last_name}"
    call = ManifestCall(manifestMtbTemplate=template, requestId=f"b2b-{employee.id}-{month}-{attempt}",
                        ticketHolder=TicketHolder(travellerId=f"b2b-{company.id}-{employee.id}", travellerName=name),
                        startOfValidity=valid_from if valid_from > now else None)
    issued = await tickets.issue(ctx, b2b.principal(), call, now)
    ticket_id = issued.body["ticketIds"][0]
    ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
    assert ticket is not None
    last_day = local_date(ticket.valid_until - timedelta(microseconds=1), b2b.tz)
    return TicketRef(ticket_id, month, local_date(ticket.valid_from, b2b.tz), last_day), ticket.mtb


async def revoke_due(b2b: B2B, now: datetime) -> int:
    """Revoke (Ticket API) every ticket whose scheduled revocation is due."""
    done = 0
    for ticket_id, reason in await b2b.run(b2b.store.due_revocations, now):
        try:
            await tickets.apply(b2b.ctx, b2b.principal(), ticket_id, "revoke", now)
        except ApiError as exc:  # refunded or replaced meanwhile: nothing left to revoke
            log.warning("revocation of %s (%s): %s", ticket_id, reason, exc.message)
        await b2b.run(b2b.store.mark_revoked, ticket_id, now)
        done += 1
    return done
