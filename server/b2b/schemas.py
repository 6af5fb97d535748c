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


# --- the admin API (server/b2b/admin.py builds the JSON) ----------------------------------------

class AdminFare(BaseModel):
    amount: float
    currency: str
    vatAmount: float
    vatPercent: float


class AdminProduct(BaseModel):
    productId: str
    category: str | None
    zones: list[str]
    modes: list[str]
    fare: AdminFare


class AdminPlan(BaseModel):
    type: Literal["fully-subsidized-plan", "split-pay-plan"]
    employeeContributionAmount: float | None


class AdminCompany(BaseModel):
    id: int
    name: str
    apiEnabled: bool
    product: AdminProduct
    plan: AdminPlan
    createdAt: str


class AdminApiKey(BaseModel):
    keyId: str
    companyId: int
    name: str | None
    enabled: bool
    permissions: list[str]
    createdAt: str


class AdminNewApiKey(AdminApiKey):
    secret: str = Field(description="the API Key Secret: shown in this answer only, stored hashed")
    note: str


class AdminIntegration(BaseModel):
    id: int
    companyId: int
    name: str
    status: str
    lastSyncId: str | None
    lastSyncedAt: str | None
    counts: SyncCounts
    errors: list[dict]
    createdAt: str


class AdminEndpoint(BaseModel):
    id: int
    companyId: int
    url: str
    events: list[str]
    enabled: bool
    failingSince: str | None = Field(description="every attempt has failed since then")
    disabledAt: str | None
    disabledReason: str | None = Field(description="why it was disabled (by the operator, or after 24 h of failures)")
    createdAt: str


class AdminNewEndpoint(AdminEndpoint):
    secret: str = Field(description="the signing secret (whsec_...): shown in this answer only")
    note: str


class AdminAttempt(BaseModel):
    at: str
    statusCode: int | None
    error: str | None
    durationMs: int


class AdminDelivery(BaseModel):
    deliveryId: int
    eventId: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    nextAttemptAt: str | None
    createdAt: str
    finishedAt: str | None
    log: list[AdminAttempt]


class AdminCompanyOne(One[AdminCompany]):
    pass


class AdminCompanyList(One[list[AdminCompany]]):
    pass


class AdminApiKeyOne(One[AdminApiKey]):
    pass


class AdminNewApiKeyOne(One[AdminNewApiKey]):
    pass


class AdminApiKeyList(One[list[AdminApiKey]]):
    pass


class AdminIntegrationOne(One[AdminIntegration]):
    pass


class AdminIntegrationList(One[list[AdminIntegration]]):
    pass


class AdminEndpointOne(One[AdminEndpoint]):
    pass


class AdminNewEndpointOne(One[AdminNewEndpoint]):
    pass


class AdminEndpointList(One[list[AdminEndpoint]]):
    pass


class AdminDeliveryList(One[list[AdminDelivery]]):
    pass
