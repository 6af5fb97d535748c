"""Response shapes of the B2B API for its OpenAPI document (the JSON itself is built in
:mod:`server.b2b.resources`; a test checks every answer against these)."""
from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .subscription import STATUSES

T = TypeVar("T")
Status = Literal[STATUSES]  # type: ignore[valid-type]


class Link(BaseModel):
    href: str
    type: str


class Subscription(BaseModel):
    status: Status  # type: ignore[valid-type]
    startAt: str | None = Field(description="first day covered (operator-local date)")
    nextTicketAt: str | None = Field(description="day the next ticket is issued; null: none planned")
    pausedAt: str | None = Field(description="first day of the pause (future: scheduled)")
    cancelledAt: str | None = Field(description="first day no longer covered")
    reactivatedAt: str | None = Field(description="first day after the pause; null: open-ended")


class Amount(BaseModel):
    label: str
    value: float


class PlanJson(BaseModel):
    type: Literal["fully-subsidized-plan", "split-pay-plan"]
    contractSigningStatus: str
    employeeContributionAmount: Amount | None


class TicketLinks(BaseModel):
    apple: str
    google: str


class TicketJson(BaseModel):
    ticketId: str
    ticketMonth: str
    validFrom: str
    validUntil: str
    links: TicketLinks


class HrIntegrationLink(BaseModel):
    type: Literal["hr-integration"]
    hrId: str
    hrIntegrationId: int
    lastSyncId: str | None
    lastSynced: str | None


class EmployeeLinks(BaseModel):
    self: Link
    employeeDocuments: Link


class Employee(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    firstName: str
    lastName: str
    email: str
    dateOfBirth: str | None
    profileImage: str | None
    resource: Literal["employee"]
    subscription: Subscription
    plan: PlanJson
    ticket: TicketJson | None = Field(description="the latest live monthly ticket; null when none")
    hrIntergartionLinks: list[HrIntegrationLink] = Field(description="spelt as the published resource spells it")
    links: EmployeeLinks = Field(alias="_links")


class DocumentLinks(BaseModel):
    self: Link
    employee: Link
    download: Link


class EmployeeDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    employeeId: int
    documentName: str
    documentFileType: Literal["pdf"]
    downloadable: bool
    createdAt: str
    updatedAt: str
    resource: Literal["employee-document"]
    links: DocumentLinks = Field(alias="_links")


class SyncCounts(BaseModel):
    added: int
    updated: int
    offboarded: int


class IntegrationLinks(BaseModel):
    self: Link
    sync: Link


class HrIntegration(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    name: str
    status: str = Field(description="INITIAL SYNC PENDING, SYNCED or SYNC FAILED")
    resource: Literal["hr-integration"]
    lastSyncId: str | None
    lastSyncedAt: str | None
    counts: SyncCounts = Field(description="of the last applied sync")
    errors: list[dict] = Field(description="row errors of the last refused sync")
    createdAt: str
    links: IntegrationLinks = Field(alias="_links")


class EmployeeTicket(BaseModel):
    ticketId: str
    ticketMonth: str
    validFrom: str
    validUntil: str
    mtb: str = Field(description="the MTB, zlib+base64url, as a wallet shows it")


class Health(BaseModel):
    status: Literal["ok"]


class Page(BaseModel, Generic[T]):
    data: list[T]
    page: int
    perPage: int
    totalPages: int
    total: int


class One(BaseModel, Generic[T]):
    data: T


class Many(BaseModel, Generic[T]):
    data: Page[T]


# Concrete envelopes (an OpenAPI schema name may not contain brackets).
class EmployeeList(Many[Employee]):
    pass


class EmployeeOne(One[Employee]):
    pass


class DocumentList(Many[EmployeeDocument]):
    pass


class DocumentOne(One[EmployeeDocument]):
    pass


class IntegrationList(Many[HrIntegration]):
    pass


class IntegrationOne(One[HrIntegration]):
    pass


class EmployeeTicketOne(One[EmployeeTicket]):
    pass
