"""What the store hands out and takes in: plain records, the sort allow-lists, the errors.

Handlers and services see these, never rows; the SQL that fills them is in
:mod:`server.store.core` (one set of queries for every backend).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DENY_LIST_AGE = "denyList"  # the deny list's name in a device state report's listAgesSeconds
MAX_LIST_AGE = 10 ** 9  # seconds: as the state report's schema bounds it


class StoreError(Exception):
    pass


class DatabaseUnavailable(StoreError):
    """The database cannot be reached (the message says why, without a password)."""


class StateConflict(StoreError):
    """A compare-and-set on a ticket's state found another state."""


class DuplicateManifest(StoreError):
    """The manifest (or the requestId) was already used to issue tickets."""


class DuplicateCredential(StoreError):
    pass


@dataclass
class Credential:
    entity_id: str
    role: str
    pid: int
    password_hash: str
    created_at: datetime
    cert_subject: str | None = None  # a TLS client certificate subject (RFC 4514) bound to it


@dataclass
class TicketRecord:
    ticket_id: str
    pid: int
    bundle_id: str
    manifest_id: str
    settlement_id: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    fare: dict[str, Any]
    state: str
    payload: str  # base64url JSON (ticketPayload)
    mtb: str  # this ticket alone, zlib+base64url
    product_id: str | None = None
    category: str | None = None
    traveller_id: str | None = None
    traveller_name: str | None = None
    request_id: str | None = None
    booking_id: str | None = None
    refunded_amount: dict[str, Any] | None = None
    recovered_amount: dict[str, Any] | None = None
    recovered_from: str | None = None
    replaced_by: str | None = None
    updated_at: datetime | None = None


@dataclass
class BundleRecord:
    bundle_id: str
    pid: int
    manifest_id: str
    settlement_id: str
    mtb: str
    created_at: datetime
    ticket_ids: list[str] = field(default_factory=list)
    parent_id: str | None = None
    request_id: str | None = None


@dataclass
class NewEvent:
    local_event_id: str | None
    ticket_id: str
    event_time: datetime
    event_result: int | None
    body: dict[str, Any]
    mtb_ref: str | None = None  # "<pid>:<issuerSignature>" of the MTB the event is about
    lat: float | None = None
    long: float | None = None
    use: str | None = None  # its uses-feed entry (wire JSON without the id) when it is an accepted use


@dataclass
class EventRecord:
    event_id: int
    sub: str
    local_event_id: str | None
    ticket_id: str
    kind: str
    event_time: datetime
    event_result: int | None
    poster_pid: int | None
    received_at: datetime
    body: dict[str, Any]


@dataclass
class DenyEntry:
    """One deny-list entry (``blacklistEntry`` on the wire)."""

    expire: datetime
    ticket_id: str | None = None
    traveller_id: str | None = None
    token_id: str | None = None
    reason: str | None = None
    entry_id: int | None = None
    created_at: datetime | None = None


@dataclass
class ManifestRecord:
    manifest_id: str
    pid: int
    created_at: datetime
    expire: datetime
    body: dict[str, Any]  # the productSetManifest as POST /manifest answered it


@dataclass
class TokenRecord:
    """A token (phone, card) by its RFC 7638 thumbprint."""

    token_id: str
    pid: int  # the token issuer's participant id
    public_key: dict[str, Any]  # the public JWK
    created_at: datetime
    serial: int | None = None


@dataclass
class WhitelistEntry:
    """A ticket bound to a token, for ID-based travel (``whitelistEntry`` on the wire)."""

    token_id: str
    ticket_id: str
    mtb: str  # the ticket's MTB as issued (zlib+base64url)
    valid_from: datetime
    valid_until: datetime
    created_at: datetime
    priority: int | None = None
    entry_id: int | None = None


@dataclass
class LimitState:
    """One rate-limit key's state (:mod:`server.auth.ratelimit` owns the rule that changes it)."""

    hits: list[float] = field(default_factory=list)  # times of the slots taken, oldest first
    blocked_until: float | None = None
    keep_until: float = 0.0  # after this the state says nothing any more and may be dropped


@dataclass
class TicketQuery:
    now: datetime
    traveller_id: str | None = None  # None: every traveller (admins only)
    pid: int | None = None
    active: bool | None = None
    refundable: bool | None = None
    refunded: bool | None = None
    request_id: str | None = None
    sort_field: str = "issuedAt"
    sort_order: str = "desc"
    offset: int = 0
    limit: int = 100


@dataclass
class DeviceReport:
    """A device's latest state report (``state``: the report, JSON text as served back)."""

    device: str
    last_contact: datetime
    software_version: str | None
    outbox_depth: int
    alarm_count: int
    state: str

    def deny_fetched_at(self) -> datetime | None:
        """When the device last fetched the deny list, by this report: the report's time less
        the age the device gives for its deny list (``listAgesSeconds.denyList``); None when it
        gives none (never loaded, or a device that does not say)."""
        try:
            ages = json.loads(self.state).get("listAgesSeconds")
        except (ValueError, AttributeError):
            return None
        age = ages.get(DENY_LIST_AGE) if isinstance(ages, dict) else None
        if not isinstance(age, (int, float)) or isinstance(age, bool) or not 0 <= age <= MAX_LIST_AGE:
            return None
        return self.last_contact - timedelta(seconds=age)


# API sort field -> column. The only names that ever reach an ORDER BY.
TICKET_SORT_FIELDS = {"issuedAt": "issued_at", "validFrom": "valid_from", "validUntil": "valid_until",
                      "ticketId": "ticket_id"}
EVENT_SORT_FIELDS = {"eventId": "id", "time": "event_time", "receivedAt": "received_at"}
DEVICE_SORT_FIELDS = {"lastContact": "last_contact", "deviceId": "device", "outboxDepth": "outbox_depth",
                      "alarms": "alarm_count"}
SORT_ORDERS = {"asc": "ASC", "desc": "DESC"}
