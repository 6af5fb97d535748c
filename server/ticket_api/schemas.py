"""Response bodies of the Ticket API, after the BoB Ticket API v1 definitions (members beyond
the seed are marked; clients ignore members they do not know)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..models import TicketEvent, TicketHolder


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
    ticketEventIds: list[str] | None = None
    travellerPhotoURL: str | None = None


class TicketEventResult(BaseModel):
    ticketEvent: TicketEvent | None = None
    ticketEventInspectMessage: str | None = None
    ticketEventPassengerMessage: str | None = None
    ticketEventStatus: int | None = None
    ticketMetadata: TicketMetadata | None = None
