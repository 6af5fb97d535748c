"""Employers (the JobTicket B2B side, when ``b2b.enabled``): the companies; a company's API
keys, HR integrations and webhook endpoints; its employees with their subscription state; an
integration's HR sync runs (the counts of those applied, the errors of those refused); an
endpoint's delivery log with every attempt, a "retry now" button per delivery not delivered, and
"enable again" for an endpoint the sender disabled (both admin only).

Everything is read and changed through the B2B store (:class:`server.b2b.store.B2BStore`). "Retry
now" makes the delivery due at once (:meth:`~server.b2b.store.B2BStore.retry_delivery`) and wakes
this process's webhook sender, which sends it within moments; with ``b2b.jobs`` off the next
``python -m server b2b deliver`` does.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from aiohttp import web

from mtb.timeutil import parse_time

from ..b2b.records import Company, Endpoint, Query
from ..b2b.service import B2B
from ..b2b.subscription import STATUSES
from .page import ADMIN, access, console_of, render, user_of
from .render import ConsoleError, Pager, choice, page_number, see_other

log = logging.getLogger("server.console")
routes = web.RouteTableDef()
T = TypeVar("T")

EMPLOYEE_STATUSES = ("all", *STATUSES)
DELIVERY_STATUSES = ("all", "pending", "failed", "delivered")
DONE = {"retry": "The delivery is due now: the webhook sender tries it at once.",
        "retry-later": "The delivery is due now: the next `python -m server b2b deliver` sends it (b2b.jobs is off).",
        "enabled": "The endpoint is enabled again; what it missed is due now."}
MAX_ID = 10 ** 15


def b2b_of(request: web.Request) -> B2B:
    b2b = console_of(request).b2b
    if b2b is None:  # the routes are only added with the B2B side; this guards a misuse
        raise ConsoleError(404, "The employer side (B2B) is not enabled on this server.")
    return b2b


def _id(request: web.Request, name: str, what: str) -> int:
    """A path id: ASCII digits, else the same 404 as an id that does not exist."""
    value = request.match_info[name]
    if not (value.isascii() and value.isdigit()) or not 0 < int(value[:16]) < MAX_ID:
        raise ConsoleError(404, f"No {what} {value[:40]!r}.")
    return int(value)


def page_of(items: Sequence[T], request: web.Request, size: int, param: str = "page") -> tuple[Sequence[T], Pager]:
    """One page of a short list the store hands out whole (companies, keys, endpoints)."""
    number = page_number(request, param)
    pager = Pager(number, size, len(items), request.rel_url, param)
    return items[pager.offset:pager.offset + size], pager


async def _company(request: web.Request) -> tuple[B2B, Company]:
    b2b = b2b_of(request)
    company_id = _id(request, "company", "company")
    company = await b2b.run(b2b.store.get_company, company_id)
    if company is None:
        raise ConsoleError(404, f"No company {company_id}.")
    return b2b, company


async def _endpoint(request: web.Request) -> tuple[B2B, Company, Endpoint]:
    b2b, company = await _company(request)
    endpoint_id = _id(request, "endpoint", "webhook endpoint")
    endpoint = await b2b.run(b2b.store.get_endpoint, endpoint_id)
    if endpoint is None or endpoint.company_id != company.id:
        raise ConsoleError(404, f"No webhook endpoint {endpoint_id} of {company.name}.")
    return b2b, company, endpoint


def endpoint_state(endpoint: Endpoint) -> str:
    """``enabled``, ``failing`` (every attempt failing since ``failing_since``) or ``disabled``."""
    if not endpoint.enabled:
        return "disabled"
    return "failing" if endpoint.failing_since is not None else "enabled"


@routes.get("/employers", name="console.employers")
async def companies(request: web.Request) -> web.StreamResponse:
    b2b = b2b_of(request)
    size = console_of(request).ctx.config.console.page_size
    found = await b2b.run(b2b.store.list_companies)
    rows, pager = page_of(found, request, size)
    counts = await b2b.run(b2b.store.status_counts)
    endpoints: dict[int, list[Endpoint]] = {}
    for endpoint in await b2b.run(b2b.store.list_endpoints):
        endpoints.setdefault(endpoint.company_id, []).append(endpoint)
    return render(request, "employers.html", rows=rows, pager=pager, counts=counts, endpoints=endpoints,
                  endpoint_state=endpoint_state)


@routes.get("/employers/{company}", name="console.company")
async def company_page(request: web.Request) -> web.StreamResponse:
    b2b, company = await _company(request)
    size = console_of(request).ctx.config.console.page_size
    number = page_number(request, "integrations")
    integrations, total = await b2b.run(b2b.store.list_integrations, company.id,
                                        Query("id", "asc", (number - 1) * size, size))
    endpoints, endpoint_pager = page_of(await b2b.run(b2b.store.list_endpoints, company.id), request, size, "webhooks")
    keys, key_pager = page_of(await b2b.run(b2b.store.list_api_keys, company.id), request, size, "keys")
    counts = (await b2b.run(b2b.store.status_counts)).get(company.id, {})
    return render(request, "company.html", company=company, counts=counts, statuses=STATUSES,
                  integrations=integrations, integration_pager=Pager(number, size, total, request.rel_url,
                                                                     "integrations"),
                  endpoints=endpoints, endpoint_pager=endpoint_pager, endpoint_state=endpoint_state,
                  keys=keys, key_pager=key_pager)


@routes.get("/employers/{company}/employees", name="console.employees")
async def employees(request: web.Request) -> web.StreamResponse:
    b2b, company = await _company(request)
    status = choice(request, "status", EMPLOYEE_STATUSES, "all")
    number, size = page_number(request), console_of(request).ctx.config.console.page_size
    filters: dict[str, Any] = {} if status == "all" else {"status": [status]}
    rows, total = await b2b.run(b2b.store.list_employees, company.id,
                                Query("lastName", "asc", (number - 1) * size, size, filters))
    counts = (await b2b.run(b2b.store.status_counts)).get(company.id, {})
    return render(request, "employees.html", company=company, rows=rows, counts=counts, shown=status,
                  statuses=EMPLOYEE_STATUSES, pager=Pager(number, size, total, request.rel_url))


@routes.get("/employers/{company}/integrations/{integration}", name="console.integration")
async def integration_page(request: web.Request) -> web.StreamResponse:
    b2b, company = await _company(request)
    integration_id = _id(request, "integration", "HR integration")
    integration = await b2b.run(b2b.store.get_integration, integration_id)
    if integration is None or integration.company_id != company.id:
        raise ConsoleError(404, f"No HR integration {integration_id} of {company.name}.")
    number, size = page_number(request), console_of(request).ctx.config.console.page_size
    runs, total = await b2b.run(b2b.store.list_syncs, integration.id, (number - 1) * size, size)
    return render(request, "integration.html", company=company, integration=integration, runs=runs,
                  pager=Pager(number, size, total, request.rel_url))


async def _webhook_page(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    b2b, company, endpoint = await _endpoint(request)
    shown = choice(request, "status", DELIVERY_STATUSES, "all")
    number, size = page_number(request), console_of(request).ctx.config.console.page_size
    counts = await b2b.run(b2b.store.delivery_counts, endpoint.id)
    total = sum(counts.values()) if shown == "all" else counts.get(shown, 0)
    rows = await b2b.run(b2b.store.deliveries, endpoint.id, size, (number - 1) * size,
                         None if shown == "all" else shown)
    attempts = {delivery: [{**a, "at": parse_time(a["at"])} for a in tried]
                for delivery, tried in (await b2b.run(b2b.store.attempts_of, [d.id for d in rows])).items()}
    return render(request, "webhook.html", status=status, error=error, done=DONE.get(request.query.get("done", "")),
                  company=company, endpoint=endpoint, state=endpoint_state(endpoint), rows=rows, attempts=attempts,
                  counts=counts, shown=shown, statuses=DELIVERY_STATUSES,
                  pager=Pager(number, size, total, request.rel_url))


@routes.get("/employers/{company}/webhooks/{endpoint}", name="console.webhook")
async def webhook_page(request: web.Request) -> web.StreamResponse:
    return await _webhook_page(request)


def _back(request: web.Request, done: str) -> web.Response:
    parts = {"company": request.match_info["company"], "endpoint": request.match_info["endpoint"]}
    return see_other(str(request.app.router["console.webhook"].url_for(**parts).with_query(done=done)))


@routes.post("/employers/{company}/webhooks/{endpoint}/deliveries/{delivery}/retry", name="console.webhook_retry")
@access(ADMIN)
async def retry(request: web.Request) -> web.StreamResponse:
    """Retry now: the middleware has checked the session, the admin role and the CSRF token."""
    b2b, _, endpoint = await _endpoint(request)
    delivery_id = _id(request, "delivery", "delivery")
    if not await b2b.run(b2b.store.retry_delivery, endpoint.id, delivery_id, console_of(request).now()):
        return await _webhook_page(request, status=409, error=f"Not done: delivery {delivery_id} of this endpoint was "
                                                              "delivered already, or there is no such delivery.")
    b2b.wake.set()
    log.info("console: %s made webhook delivery %s (endpoint %s) due now", user_of(request).entity_id, delivery_id,
             endpoint.id)
    return _back(request, "retry" if b2b.config.jobs else "retry-later")


@routes.post("/employers/{company}/webhooks/{endpoint}/enable", name="console.webhook_enable")
@access(ADMIN)
async def enable(request: web.Request) -> web.StreamResponse:
    b2b, _, endpoint = await _endpoint(request)
    await b2b.run(b2b.store.set_endpoint_enabled, endpoint.id, True, console_of(request).now())
    b2b.wake.set()
    log.info("console: %s enabled webhook endpoint %s", user_of(request).entity_id, endpoint.id)
    return _back(request, "enabled")
