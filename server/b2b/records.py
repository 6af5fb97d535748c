"""What the B2B store hands out: plain records (the SQL is in :mod:`server.b2b.store`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ..store import BundleRecord, TicketRecord
from . import webhooks
from .calendar import Month
from .reconcile import Change, Current, HrData, Profile
from .subscription import Dates, Plan, Status

PERMISSIONS = ("view-employees", "add-employees", "update-employees", "remove-employees", "view-hr-integrations")
SYNC_PERMISSIONS = ("view-employees", "add-employees", "update-employees", "remove-employees")


class B2BStoreError(Exception):
    pass


class DuplicateSync(B2BStoreError):
    """The ``syncId`` was applied already (by this request's twin, or earlier)."""


@dataclass(frozen=True)
class Product:
    """The company's job-ticket product: what its employees' MTBs say and cost."""

    product_id: str
    zones: tuple[str, ...]
    modes: tuple[str, ...]
    fare: dict[str, Any]  # {amount, currency, vatAmount, vatPercent} per month
    category: str | None = "adult"


@dataclass(frozen=True)
class Company:
    id: int
    name: str
    api_enabled: bool
    product: Product
    plan: Plan
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    company_id: int
    secret_hash: str
    permissions: frozenset[str]
    enabled: bool
    name: str | None
    created_at: datetime


@dataclass(frozen=True)
class Integration:
    id: int
    company_id: int
    name: str
    status: str
    last_sync_id: str | None
    last_synced_at: datetime | None
    added: int
    updated: int
    offboarded: int
    errors: list[dict[str, Any]] | None
    created_at: datetime


@dataclass(frozen=True)
class SyncRun:
    """One HR sync of an integration: applied (``sync_id`` and the counts) or refused
    (``errors``, as the 422 gave them)."""

    received_at: datetime
    sync_id: str | None
    added: int
    updated: int
    offboarded: int
    errors: list[dict[str, Any]] | None

    @property
    def applied(self) -> bool:
        return self.errors is None


@dataclass(frozen=True)
class TicketRef:
    ticket_id: str
    month: Month
    valid_from: date
    valid_until: date  # last day


@dataclass(frozen=True)
class Employee:
    id: int
    company_id: int
    integration_id: int
    hr_id: str
    profile: Profile
    hr: HrData
    status: Status
    dates: Dates
    next_ticket_at: date | None
    last_sync_id: str | None
    last_synced: datetime | None
    created_at: datetime
    updated_at: datetime
    ticket: TicketRef | None = None  # the latest live ticket

    def current(self) -> Current:
        return Current(self.id, self.hr_id, self.profile, self.hr, self.status, self.dates,
                       self.ticket.month if self.ticket else None)


@dataclass(frozen=True)
class IssueTerms:
    """What follows from issuing an employee's month ticket: the day of the next one
    (``nextTicketAt``), and when a cancellation revokes the live tickets (None: none)."""

    next_ticket_at: date | None
    revoke_at: datetime | None


@dataclass(frozen=True)
class Planned(IssueTerms):
    """One employee's change as the store writes it, with its ``nextTicketAt`` and revocation
    time (None: no cancellation, so any scheduled revocation is withdrawn)."""

    change: Change


@dataclass(frozen=True)
class NewTicket:
    """A month ticket signed by the roll-over, not stored yet: the B2B reference and the Ticket
    API's records."""

    employee_id: int
    ref: TicketRef
    bundle: BundleRecord
    records: list[TicketRecord]


@dataclass(frozen=True)
class RenderJob:
    """A ticket whose document is to be rendered, with what goes on the page."""

    ticket_id: str
    company_id: int
    employee_id: int
    month: Month
    valid_from: date
    valid_until: date  # last day
    employee_name: str
    company_name: str
    zones: tuple[str, ...]
    modes: tuple[str, ...]
    mtb: str  # zlib+base64url
    created_at: datetime  # the roll-over's moment: the document's createdAt
    attempts: int


@dataclass(frozen=True)
class Document:
    id: int
    company_id: int
    employee_id: int
    ticket_id: str
    month: Month
    name: str
    file_type: str
    downloadable: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Endpoint:
    id: int
    company_id: int
    url: str
    event_types: tuple[str, ...]
    secret: str
    enabled: bool
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    order_key: str
    status: str  # pending, delivered, failed
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    body: bytes = b""
    url: str = ""
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Attempt:
    """One try at a delivery, as the sender saw it: ``next_attempt_at`` None after a failure
    means given up."""

    delivery: Delivery
    at: datetime  # the schedule's time of the round
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None

    @property
    def ok(self) -> bool:
        return webhooks.success(self.status_code)


@dataclass(frozen=True)
class Query:
    """A page of a list: sort (API field name, already checked against the list's allow-list),
    order, offset, limit, and the list's filters."""

    sort_field: str
    sort_order: str
    offset: int
    limit: int
    filters: dict[str, Any] = field(default_factory=dict)
