"""The operator's side of the B2B API: companies, API keys, HR integrations and webhook
endpoints. One set of rules for both ways in: ``python -m server b2b ...`` (:mod:`.cli`) and
the HTTP admin API under ``/b2b/admin`` (:mod:`.admin_handlers`, an admin token) build the same
request models and call the same functions here, which answer the same JSON.

The models are the bodies of the HTTP API (unknown members refused, so a typo is an error that
names it); the functions take the B2B store and run in the store's thread. A missing company,
key or endpoint is :class:`NotFound` (404 over HTTP, an error line from the CLI); a body that
breaks a rule is pydantic's ``ValidationError`` (422 naming the field).
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import yarl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from mtb.timeutil import format_extended

from ..models import Money
from . import keys, webhooks
from .records import PERMISSIONS, ApiKey, Company, Delivery, Endpoint, Integration, Product, Query
from .store import B2BStore
from .subscription import PLAN_TYPES, Plan

Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Permission = Literal[PERMISSIONS]  # type: ignore[valid-type]
EventType = Literal[webhooks.EVENT_TYPES]  # type: ignore[valid-type]
MODES = ("bus", "tram", "train", "metro", "ferry")  # what a job ticket's MTB may name (mot)


class NotFound(LookupError):
    """No such company, key or endpoint."""

    def __init__(self, what: str, ident: object):
        super().__init__(f"no {what} {ident}")
        self.what = what


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FareIn(_Body):
    amount: Money = Field(description="the month's fare, excluding VAT")
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    vatPercent: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)] = 0.0
    vatAmount: Money | None = Field(None, description="default: amount x vatPercent / 100, rounded to cents")

    def as_fare(self) -> dict[str, Any]:
        vat = self.vatAmount if self.vatAmount is not None else round(self.amount * self.vatPercent / 100, 2)
        return {"amount": self.amount, "currency": self.currency, "vatAmount": vat, "vatPercent": self.vatPercent}


class ProductIn(_Body):
    """The company's job-ticket product: what its employees' MTBs say and cost."""

    productId: Name
    category: Name | None = "adult"
    zones: list[Name] = Field(default_factory=list, max_length=100, description="empty: every zone")
    modes: list[Literal[MODES]] = Field(default_factory=list, description="empty: every mode")  # type: ignore[valid-type]
    fare: FareIn


class PlanIn(_Body):
    type: Literal[PLAN_TYPES] = "fully-subsidized-plan"  # type: ignore[valid-type]
    employeeContributionAmount: Money | None = Field(None, description="split-pay-plan: the employee's monthly share")

    @model_validator(mode="after")
    def _plan(self) -> "PlanIn":
        self.as_plan()  # Plan's own rule: a split-pay-plan has a contribution, a fully subsidised one none
        return self

    def as_plan(self) -> Plan:
        return Plan(self.type, self.employeeContributionAmount)


class CompanyIn(_Body):
    name: Name
    product: ProductIn
    plan: PlanIn = Field(default_factory=PlanIn, description="the default plan of its employees")
    apiEnabled: StrictBool = True


class CompanyPatch(_Body):
    apiEnabled: StrictBool = Field(description="false: every key of the company is refused (401)")


class ApiKeyIn(_Body):
    permissions: list[Permission] | None = Field(None, min_length=1, description="default: all of them")
    name: Name | None = None


class ApiKeyPatch(_Body):
    enabled: StrictBool | None = None
    permissions: list[Permission] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _something(self) -> "ApiKeyPatch":
        if self.enabled is None and self.permissions is None:
            raise ValueError("give enabled or permissions (or both)")
        return self


class IntegrationIn(_Body):
    name: Name = "JobTicket+ API Integration"


def _connectable(value: str) -> str:
    """A URL the sender can connect to, parsed as the sender's HTTP client parses it (stored
    unparseable, it would fail every delivery for a day and then disable the endpoint)."""
    try:
        yarl.URL(value)
    except ValueError as exc:
        raise ValueError(f"is not a URL the sender can use: {exc}") from None
    return value


Url = Annotated[StrictStr, Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s/?#]+[^\s]*$"),
                AfterValidator(_connectable)]


class EndpointIn(_Body):
    url: Url = Field(description="where deliveries are POSTed (http or https)")
    events: list[EventType] | None = Field(None, min_length=1, description="default: every event type")


class EndpointPatch(_Body):
    enabled: StrictBool = Field(description="true: clears the failure record; what it missed is due at once")


# --- answers ----------------------------------------------------------------------------------

def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_extended(value)


def company_json(company: Company) -> dict[str, Any]:
    product = company.product
    return {"id": company.id, "name": company.name, "apiEnabled": company.api_enabled,
            "product": {"productId": product.product_id, "category": product.category, "zones": list(product.zones),
                        "modes": list(product.modes), "fare": product.fare},
            "plan": {"type": company.plan.type, "employeeContributionAmount": company.plan.contribution},
            "createdAt": _instant(company.created_at)}


def key_json(key: ApiKey) -> dict[str, Any]:
    return {"keyId": key.key_id, "companyId": key.company_id, "name": key.name, "enabled": key.enabled,
            "permissions": sorted(key.permissions), "createdAt": _instant(key.created_at)}


def integration_json(integration: Integration) -> dict[str, Any]:
    return {"id": integration.id, "companyId": integration.company_id, "name": integration.name,
            "status": integration.status, "lastSyncId": integration.last_sync_id,
            "lastSyncedAt": _instant(integration.last_synced_at),
            "counts": {"added": integration.added, "updated": integration.updated, "offboarded": integration.offboarded},
            "errors": integration.errors or [], "createdAt": _instant(integration.created_at)}


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "companyId": endpoint.company_id, "url": endpoint.url, "events": list(endpoint.event_types),
            "enabled": endpoint.enabled, "failingSince": _instant(endpoint.failing_since),
            "disabledAt": _instant(endpoint.disabled_at), "disabledReason": endpoint.disabled_reason,
            "createdAt": _instant(endpoint.created_at)}


def delivery_json(delivery: Delivery, attempts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"deliveryId": delivery.id, "eventId": delivery.event_id, "type": delivery.event_type,
            "status": delivery.status, "attempts": delivery.attempts, "lastStatusCode": delivery.last_status_code,
            "lastError": delivery.last_error, "nextAttemptAt": _instant(delivery.next_attempt_at),
            "createdAt": _instant(delivery.created_at), "finishedAt": _instant(delivery.finished_at),
            "log": [{"at": a["at"], "statusCode": a["status_code"], "error": a["error"],
                     "durationMs": a["duration_ms"]} for a in attempts]}


# --- companies --------------------------------------------------------------------------------

def _company(store: B2BStore, company_id: int) -> Company:
    company = store.get_company(company_id)
    if company is None:
        raise NotFound("company", company_id)
    return company


def create_company(store: B2BStore, body: CompanyIn, now: datetime) -> dict[str, Any]:
    p = body.product
    product = Product(p.productId, tuple(p.zones), tuple(p.modes), p.fare.as_fare(), p.category)
    company_id = store.add_company(body.name, product, body.plan.as_plan(), now, api_enabled=body.apiEnabled)
    return company_json(_company(store, company_id))


def list_companies(store: B2BStore) -> list[dict[str, Any]]:
    return [company_json(c) for c in store.list_companies()]


def get_company(store: B2BStore, company_id: int) -> dict[str, Any]:
    return company_json(_company(store, company_id))


def update_company(store: B2BStore, company_id: int, patch: CompanyPatch) -> dict[str, Any]:
    if not store.set_company_api(company_id, patch.apiEnabled):
        raise NotFound("company", company_id)
    return get_company(store, company_id)


# --- API keys ---------------------------------------------------------------------------------

def create_key(store: B2BStore, company_id: int, body: ApiKeyIn, now: datetime) -> dict[str, Any]:
    """A new key; the answer is the only place its secret ever appears (stored hashed)."""
    _company(store, company_id)
    key, secret = keys.new_key(company_id, body.permissions or list(PERMISSIONS), now, body.name)
    store.add_api_key(key)
    return {**key_json(key), "secret": secret, "note": "the secret is shown only now; it is stored hashed"}


def list_keys(store: B2BStore, company_id: int) -> list[dict[str, Any]]:
    _company(store, company_id)
    return [key_json(k) for k in store.list_api_keys(company_id)]


def get_key(store: B2BStore, key_id: str) -> dict[str, Any]:
    key = store.get_api_key(key_id) if keys.is_key_id(key_id) else None
    if key is None:
        raise NotFound("API key", key_id)
    return key_json(key)


def update_key(store: B2BStore, key_id: str, patch: ApiKeyPatch) -> dict[str, Any]:
    get_key(store, key_id)
    store.set_api_key(key_id, enabled=patch.enabled, permissions=patch.permissions)
    return get_key(store, key_id)


# --- HR integrations --------------------------------------------------------------------------

def create_integration(store: B2BStore, company_id: int, body: IntegrationIn, now: datetime) -> dict[str, Any]:
    _company(store, company_id)
    integration = store.get_integration(store.add_integration(company_id, body.name, now))
    return integration_json(integration)  # type: ignore[arg-type]


def list_integrations(store: B2BStore, company_id: int) -> list[dict[str, Any]]:
    _company(store, company_id)
    found, _ = store.list_integrations(company_id, Query("id", "asc", 0, 10_000))
    return [integration_json(i) for i in found]


# --- webhook endpoints ------------------------------------------------------------------------

def create_endpoint(store: B2BStore, company_id: int, body: EndpointIn, now: datetime) -> dict[str, Any]:
    """A new endpoint; the answer is the only place its signing secret is shown."""
    _company(store, company_id)
    secret = webhooks.new_secret()
    endpoint_id = store.add_endpoint(company_id, body.url, body.events or list(webhooks.EVENT_TYPES), secret, now)
    return {**get_endpoint(store, endpoint_id), "secret": secret,
            "note": "the signing secret is shown only now; see server/b2b/README.md for the scheme"}


def list_endpoints(store: B2BStore, company_id: int | None = None) -> list[dict[str, Any]]:
    if company_id is not None:
        _company(store, company_id)
    return [endpoint_json(e) for e in store.list_endpoints(company_id)]


def get_endpoint(store: B2BStore, endpoint_id: int) -> dict[str, Any]:
    endpoint = store.get_endpoint(endpoint_id)
    if endpoint is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return endpoint_json(endpoint)


def update_endpoint(store: B2BStore, endpoint_id: int, patch: EndpointPatch, now: datetime) -> dict[str, Any]:
    if not store.set_endpoint_enabled(endpoint_id, patch.enabled, now):
        raise NotFound("webhook endpoint", endpoint_id)
    return get_endpoint(store, endpoint_id)


def delivery_log(store: B2BStore, endpoint_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The endpoint's deliveries, newest first, each with every attempt."""
    get_endpoint(store, endpoint_id)
    return [delivery_json(d, store.attempts(d.id)) for d in store.deliveries(endpoint_id, limit)]
