"""The employer side's work: applying an HR sync, the monthly roll-over (status refresh,
issuing), the documents rendered after it, and the revocations cancellations scheduled.

A :class:`B2B` holds what that work needs: the server :class:`~server.context.Context` (the
same keyring, store and issuing path as the Ticket API), the B2B store and settings, and this
process's name on the claims it takes.

Every process on the database (``serve --workers N``, several hosts, the CLI) may run any of
this at once; the store's rules make it safe (see :mod:`server.b2b.store`): a sync and the
roll-over take the company's lock and read inside it, one live ticket per employee and month is
a unique index, and the queues are claimed with a lease.

The roll-over signs first and stores after: a batch of employees due a ticket gets its MTBs
through the Ticket API's own checks and signing (a manifest signed by the server,
:func:`server.ticket_api.tickets.prepare_issue`), outside any lock and off the event loop; one
transaction then stores the batch (:meth:`B2BStore.issue_tickets`), dropping the tickets of
employees no longer due or already ticketed. Documents are rendered after that transaction by
whichever process claims them (:func:`render_documents`). Cancellations revoke through
:func:`server.ticket_api.tickets.apply` (``revoke``), which puts the ticket on the deny list
every validator syncs.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from mtb import b64url_decode

from ..auth import Principal
from ..auth.ratelimit import Limiter
from ..config import B2BConfig
from ..context import Context
from ..errors import ApiError
from ..models import Fare, ManifestCall, TicketHolder
from ..ticket_api import manifest, tickets
from . import documents, reconcile, roster
from .calendar import Month, local_date, month_validity, start_of, zone
from .reconcile import Change, SyncPlan
from .records import Company, DuplicateSync, Employee, Integration, IssueTerms, NewTicket, Planned, RenderJob, TicketRef
from .store import B2BStore
from .subscription import next_ticket_at, ticket_month_due

log = logging.getLogger("server.b2b")
ACTOR = "b2b-rollover"
ISSUE_BATCH = 200  # tickets signed, then stored in one transaction
RENDER_BATCH = 20  # documents claimed, rendered, stored together
LEASE = timedelta(minutes=2)  # a claim a process holds while it works; a dead one's runs out
RENDER_RETRY = timedelta(minutes=5)


def worker_name() -> str:
    """This process, as its claims name it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def wall_clock() -> datetime:
    """Leases run on the wall clock every process shares (``now`` may be a moment a test or
    ``--at`` chose)."""
    return datetime.now(timezone.utc)


@dataclass
class B2B:
    ctx: Context
    config: B2BConfig
    store: B2BStore
    tz: ZoneInfo
    limiter: Limiter | None = None  # each API key's requests (None: no limit, e.g. the CLI)
    worker: str = field(default_factory=worker_name)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # new webhook events: send now
    documents_due: asyncio.Event = field(default_factory=asyncio.Event)  # tickets issued: render now

    @classmethod
    def create(cls, ctx: Context, limiter: Limiter | None = None) -> "B2B":
        config: B2BConfig = ctx.config.b2b
        return cls(ctx, config, B2BStore(ctx.store.db), zone(config.timezone), limiter)

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.ctx.run(fn, *args, **kwargs)

    def today(self, now: datetime) -> date:
        return local_date(now, self.tz)

    def principal(self) -> Principal:
        return Principal(sub=ACTOR, pid=self.ctx.keyring.pid, role="admin", exp=0, key=ACTOR)


def revoke_time(b2b: B2B, cancelled_at: date | None) -> datetime | None:
    """When a cancellation revokes the employee's tickets: the start of ``cancelledAt`` (the
    first day not covered) in the operator's zone; None when there is no cancellation."""
    return None if cancelled_at is None else start_of(cancelled_at, b2b.tz)


def planned(b2b: B2B, change: Change, today: date, last_ticket: Month | None) -> Planned:
    return Planned(next_ticket_at=next_ticket_at(change.dates, today, last_ticket),
                   revoke_at=revoke_time(b2b, change.dates.cancelled_at), change=change)


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

    def decide(employees: list[Employee]) -> tuple[SyncPlan, list[Planned]]:
        """Runs in the store's transaction, under the company's lock."""
        if not rows and not head.allowEmptyRoster and any(e.status != "cancelled" for e in employees):
            raise ApiError(422, "employees: an empty roster would offboard every employee; send "
                                "\"allowEmptyRoster\": true if that is meant", code="empty_roster",
                           details=[{"field": "employees", "message": "empty roster refused"}])
        plan = reconcile.reconcile(rows, [e.current() for e in employees], today, company.plan)
        last = {e.hr_id: (e.ticket.month if e.ticket else None) for e in employees}
        return plan, [planned(b2b, c, today, last.get(c.hr_id)) for c in plan.changes]

    try:
        plan = await b2b.run(b2b.store.apply_sync, integration, head.syncId, digest, decide, now)
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


async def rollover(b2b: B2B, now: datetime, *, render: bool = True) -> RolloverResult:
    """The job: move every subscription to ``now`` (dates reached), issue the month's ticket to
    every employee covered today who has none, carry out due revocations, and (``render``)
    render the documents waiting. Idempotent: a second run at the same moment does nothing,
    and runs in several processes at once issue each ticket once."""
    result = RolloverResult()
    today = b2b.today(now)
    month = Month.of(today)
    for company in await b2b.run(b2b.store.list_companies):
        changed, due = await b2b.run(b2b.store.refresh_company, company.id,
                                     lambda employees: _refresh(b2b, employees, today), now)
        result.refreshed += changed
        for start in range(0, len(due), ISSUE_BATCH):
            batch = due[start:start + ISSUE_BATCH]
            taken = await b2b.run(b2b.store.ticketed, month, [e.id for e in batch])
            batch = [e for e in batch if e.id not in taken]
            try:
                signed = await asyncio.to_thread(sign_tickets, b2b, company, batch, month, now)
            except ApiError as exc:
                log.error("roll-over: company %s: %s", company.id, exc.message)
                result.errors.append(f"company {company.id}: {exc.message}")
                break
            stored = await b2b.run(b2b.store.issue_tickets, company.id, signed,
                                   lambda employee: issue_terms(b2b, employee, today, month), ACTOR, now)
            result.issued += len(stored)
    if result.issued:
        b2b.documents_due.set()
    result.revoked = await revoke_due(b2b, now)
    if render:
        result.documents = await render_documents(b2b)
    b2b.wake.set()
    return result


def _refresh(b2b: B2B, employees: list[Employee], today: date) -> tuple[list[Planned], tuple[int, list[Employee]]]:
    """The day's changes to a company's live employees, and those due this month's ticket."""
    month = Month.of(today)
    changes, due = [], []
    for employee in employees:
        last = employee.ticket.month if employee.ticket else None
        change = reconcile.refresh(employee.current(), today)
        if change is not None:
            changes.append(planned(b2b, change, today, last))
        dates = change.dates if change is not None else employee.dates
        if ticket_month_due(dates, today) == month and (last is None or last < month):
            due.append(employee)
    return changes, (len(changes), due)


def issue_terms(b2b: B2B, employee: Employee, today: date, month: Month) -> IssueTerms | None:
    """Whether ``employee`` (as stored now) gets ``month``'s ticket, and what follows if so."""
    if ticket_month_due(employee.dates, today) != month:
        return None
    return IssueTerms(next_ticket_at(employee.dates, today, month), revoke_time(b2b, employee.dates.cancelled_at))


def sign_tickets(b2b: B2B, company: Company, employees: Sequence[Employee], month: Month, now: datetime) -> list[NewTicket]:
    """Each employee's month MTB through POST /ticket's own checks and signing (a manifest for
    the company's product, signed by the server), not stored: valid from now (or the month's
    start, if later) to the end of the month in the operator's zone."""
    if not employees:
        return []
    ctx = b2b.ctx
    now = now.replace(microsecond=0)
    validity = month_validity(month, b2b.tz)
    valid_from = max(validity.valid_from, now)
    seconds = int((validity.valid_until - valid_from).total_seconds())
    if seconds < 60:
        raise ApiError(409, f"less than a minute of {month} is left; its tickets are not issued", code="month_over")
    product = company.product
    item = manifest.Item(product=manifest.Product(productId=product.product_id, category=product.category),
                         fare=Fare.model_validate(product.fare), validitySeconds=seconds,
                         zones=list(product.zones) or None, modes=list(product.modes) or None)
    signed = []
    for employee in employees:
        template, _ = manifest.create(ctx.keyring, [item], now, ctx.config.manifest_lifetime_seconds)
        name = f"{employee.profile.first_name} {employee.profile.last_name}"
        call = ManifestCall(manifestMtbTemplate=template,
                            ticketHolder=TicketHolder(travellerId=f"b2b-{company.id}-{employee.id}", travellerName=name),
                            startOfValidity=valid_from if valid_from > now else None)
        bundle, records = tickets.prepare_issue(ctx, b2b.principal(), call, now)
        ticket = records[0]
        last_day = local_date(ticket.valid_until - timedelta(microseconds=1), b2b.tz)
        ref = TicketRef(ticket.ticket_id, month, local_date(ticket.valid_from, b2b.tz), last_day)
        signed.append(NewTicket(employee.id, ref, bundle, records))
    return signed


# --- documents --------------------------------------------------------------------------------

def document_of(b2b: B2B, job: RenderJob) -> documents.TicketDocument:
    return documents.TicketDocument(
        title=document_name(job.month), company=job.company_name, employee_name=job.employee_name,
        ticket_id=job.ticket_id, valid_from=job.valid_from, valid_until=job.valid_until,
        timezone=b2b.config.timezone, zones=job.zones, modes=job.modes, barcode=b64url_decode(job.mtb))


def document_name(month: Month) -> str:
    return f"{month.label()} Job Ticket"


def _render_batch(b2b: B2B, jobs: list[RenderJob]) -> tuple[list[tuple[RenderJob, str, bytes]],
                                                             list[tuple[RenderJob, str]]]:
    done, failed = [], []
    for job in jobs:
        try:
            done.append((job, document_name(job.month), documents.render(document_of(b2b, job),
                                                                         b2b.config.document_font)))
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop the others; the log says why
            failed.append((job, f"{type(exc).__name__}: {exc}"))
    return done, failed


async def render_documents(b2b: B2B, *, max_batches: int = 100_000) -> int:
    """Render the documents waiting (claimed a batch at a time, so every process can help),
    until none is left to claim; the number stored. A render that fails is retried later."""
    stored = 0
    for _ in range(max_batches):
        jobs = await b2b.run(b2b.store.claim_render_jobs, b2b.worker, wall_clock(), LEASE, RENDER_BATCH)
        if not jobs:
            break
        done, failed = await asyncio.to_thread(_render_batch, b2b, jobs)
        for job, error in failed:
            log.error("document of ticket %s (attempt %s): %s", job.ticket_id, job.attempts, error)
            await b2b.run(b2b.store.render_failed, job, error, wall_clock() + RENDER_RETRY)
        stored += len(await b2b.run(b2b.store.store_documents, done))
        b2b.wake.set()  # their webhooks
    return stored


# --- revocations ------------------------------------------------------------------------------

async def revoke_due(b2b: B2B, now: datetime, *, max_batches: int = 10_000) -> int:
    """Revoke (Ticket API) every ticket whose scheduled revocation is due (claimed, so two
    processes never revoke the same one)."""
    done = 0
    for _ in range(max_batches):
        claimed = await b2b.run(b2b.store.claim_revocations, now, b2b.worker, wall_clock(), LEASE)
        if not claimed:
            break
        for ticket_id, reason in claimed:
            try:
                await tickets.apply(b2b.ctx, b2b.principal(), ticket_id, "revoke", now)
            except ApiError as exc:  # refunded or replaced meanwhile: nothing left to revoke
                log.warning("revocation of %s (%s): %s", ticket_id, reason, exc.message)
            await b2b.run(b2b.store.mark_revoked, ticket_id, now)
            done += 1
    return done
