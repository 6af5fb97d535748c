"""Response bodies of the Ticket API, after the BoB Ticket API v1 definitions (members beyond
the seed are marked; clients ignore members they do not know)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import EventParts, TicketHolder


class FareAmount(BaseModel):
    amount: float = Field(description="fare excluding VAT")
    currency: str
    vatAmount: float
    vatPercent: float


class RecoverStatus(BaseModel):
    recovered: bool
    recoveredAmount: FareAmount | None = None


class RecoverableStatus(BaseModel):
    recoverable: bool
    recoverableAmount: FareAmount | None = None


class RefundStatus(BaseModel):
    refunded: bool
    refundedAmount: FareAmount | None = None


class RefundableStatus(BaseModel):
    refundable: bool
    refundableAmount: FareAmount | None = None


class RevokeResponse(BaseModel):
    ticketId: str
    revoked: bool
    state: str


class Ticket(BaseModel):
    ticketId: str
    issuedAt: str = Field(json_schema_extra={"format": "date-time"})
    ticketPayload: str = Field(description="base64url JSON")
    mtb: str | None = Field(None, description="zlib+base64url MTB")
    ticketHolder: TicketHolder | None = None
    activeStatus: bool | None = None
    recoverStatus: RecoverStatus | None = None
    refundStatus: RefundStatus | None = None
    refundableStatus: RefundableStatus | None = None
    # beyond the seed:
    state: Literal["active", "frozen", "recovered", "replaced", "refunded", "revoked"] | None = None
    pid: int | None = None
    productId: str | None = None
    validFrom: str | None = Field(None, json_schema_extra={"format": "date-time"})
    validUntil: str | None = Field(None, json_schema_extra={"format": "date-time"})
    ticketBundleId: str | None = None
    manifestId: str | None = None
    settlementId: str | None = None
    requestId: str | None = None
    bookingId: str | None = None
    recoveredFrom: str | None = None
    replacedBy: str | None = None


class TicketBundle(BaseModel):
    ticketBundleId: str
    manifestId: str | None = None
    settlementId: str | None = None
    mtb: str = Field(description="zlib+base64url MTB")
    ticketIds: list[str] | None = None


class TicketIssueResponse(BaseModel):
    settlementId: str
    ticketIds: list[str]
    ticketBundle: TicketBundle | None = None


class TicketMetadata(BaseModel):
    relativeValidityStart: str | None = Field(None, json_schema_extra={"format": "date-time"})
    ticketEventIds: list[str] | None = Field(None, description="the ids of the ticket's newest events (at most 20), "
                                                               "oldest first; GET /ticket/{ticketId}/event has all")
    travellerPhotoURL: str | None = None


class StoredTicketEvent(EventParts):
    """A ticketEvent as the server stores and serves it: normalised (times extended UTC with
    milliseconds, dates extended, no nulls), with the server's eventId; unknown members a
    device sent are kept when together at most 2 KB."""

    model_config = ConfigDict(extra="allow")

    ticketId: str
    eventId: str
    time: str = Field(json_schema_extra={"format": "date-time"}, description="e.g. 2017-05-21T18:00:00.000Z")
    localEventId: str | None = None
    eventType: Literal["inspection", "validation"]
    eventResult: int | None = Field(None, ge=0, le=9)
    eventReason: str | None = None
    modeOfTransport: str | None = None
    operatingDayDate: str | None = Field(None, json_schema_extra={"format": "date"}, description="e.g. 2017-01-01")


class TicketEventResult(BaseModel):
    ticketEvent: StoredTicketEvent | None = None
    ticketEventInspectMessage: str | None = None
    ticketEventPassengerMessage: str | None = None
    ticketEventStatus: int | None = None
    ticketMetadata: TicketMetadata | None = None
