"""The published endpoints (paths relative to ``b2b.base_path``, default ``/b2b``)."""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from ..endpoint import Link, Param, Reply
from ..errors import ApiError, field_error, read_json
from . import roster, schemas
from .api import Caller, endpoint, many, one, page_query, paging_params
from .calendar import Month
from .records import SYNC_PERMISSIONS
from .resources import document_json, employee_json, integration_json
from .service import B2B, SyncReplay, sync
from .store import DOCUMENT_SORT, EMPLOYEE_SORT, INTEGRATION_SORT
from .subscription import PLAN_TYPES, STATUSES

VIEW = ("view-employees",)
VIEW_HR = ("view-hr-integrations",)
ID = Param("id", "path", {"type": "integer", "minimum": 1})
NOT_FOUND = "No such id (or not this company's)"


def _links(expression: str, *operations: str) -> tuple[Link, ...]:
    """OpenAPI links (the stateful conformance run follows them): ``operations`` called with
    ``id`` = the value at ``expression`` in this answer."""
    return tuple(Link(op, {"id": f"$response.body#{expression}"}) for op in operations)


FIRST = "/data/data/0/id"  # the first item of a page
EMPLOYEE_NEXT = ("getEmployee", "listEmployeeDocuments", "getEmployeeTicket")
DOCUMENT_NEXT = ("getDocument", "downloadDocument")
INTEGRATION_NEXT = ("getHrIntegration", "syncHrIntegration")


def _id(request: web.Request, name: str = "id") -> int:
    """A path id: digits only (ASCII), else the resource does not exist."""
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise ApiError(404, f"no resource with id {text!r}", code="not_found")
    return int(text)


def _list_param(request: web.Request, name: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    values = [v.strip() for v in request.query.get(name, "").split(",") if v.strip()]
    if allowed is not None:
        for value in values:
            if value not in allowed:
                raise field_error(name, f"{value!r} is not one of {', '.join(allowed)}", status=400,
                                  code="bad_parameter")
    return values


@endpoint("GET", "/health", op="health", permissions=(), summary="Health check (no authentication)",
          replies={200: Reply(schemas.Health)})
async def health(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    await b2b.run(b2b.store.db.query, "SELECT 1 AS one")
    return web.json_response({"status": "ok"})


@endpoint("GET", "/employees", op="listEmployees", permissions=VIEW, summary="List employees",
          description="Filters combine with AND; `status` and `ids` take comma-separated lists.",
          params=(Param("status", "query", {"type": "string"}, f"subscription statuses: {', '.join(STATUSES)}"),
                  Param("planType", "query", {"type": "string", "enum": list(PLAN_TYPES)}),
                  Param("email", "query", {"type": "string"}, "exact, case-insensitive"),
                  Param("ids", "query", {"type": "string"}, "comma-separated employee ids, at most 100"),
                  *paging_params(EMPLOYEE_SORT, "id", "asc")),
          replies={200: Reply(schemas.EmployeeList, links=_links(FIRST, *EMPLOYEE_NEXT))})
async def list_employees(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    plan_type = request.query.get("planType")
    if plan_type is not None and plan_type not in PLAN_TYPES:
        raise field_error("planType", f"must be one of {', '.join(PLAN_TYPES)}", status=400, code="bad_parameter")
    ids = _list_param(request, "ids")
    if any(not (i.isascii() and i.isdigit()) or len(i) > 15 for i in ids) or len(ids) > 100:
        raise field_error("ids", "must be at most 100 comma-separated integers", status=400, code="bad_parameter")
    query = page_query(request, EMPLOYEE_SORT, "id", "asc", status=_list_param(request, "status", STATUSES),
                       planType=plan_type, email=request.query.get("email") or None, ids=[int(i) for i in ids])
    found, total = await b2b.run(b2b.store.list_employees, caller.company.id, query)
    currency = caller.company.product.fare["currency"]
    return many([employee_json(e, caller.base, currency) for e in found], query, total)


async def _employee(request: web.Request, b2b: B2B, caller: Caller):  # type: ignore[no-untyped-def]
    employee = await b2b.run(b2b.store.get_employee, caller.company.id, _id(request))
    if employee is None:
        raise ApiError(404, "employee not found", code="employee_not_found")
    return employee


@endpoint("GET", "/employees/{id}", op="getEmployee", permissions=VIEW, summary="Get an employee", params=(ID,),
          replies={200: Reply(schemas.EmployeeOne, links=_links("/data/id", *EMPLOYEE_NEXT[1:])), 404: NOT_FOUND})
async def get_employee(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    employee = await _employee(request, b2b, caller)
    return one(employee_json(employee, caller.base, caller.company.product.fare["currency"]))


@endpoint("GET", "/employees/{id}/ticket", op="getEmployeeTicket", permissions=VIEW, params=(ID,),
          summary="The employee's current ticket with its MTB (where the ticket's links lead)",
          replies={200: Reply(schemas.EmployeeTicketOne), 404: "No such employee, or no live ticket"})
async def get_employee_ticket(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    found = await b2b.run(b2b.store.ticket_mtb, caller.company.id, _id(request))
    if found is None:
        raise ApiError(404, "no live ticket for this employee", code="ticket_not_found")
    ref, mtb_text = found
    return one({"ticketId": ref.ticket_id, "ticketMonth": str(ref.month), "validFrom": ref.valid_from.isoformat(),
                "validUntil": ref.valid_until.isoformat(), "mtb": mtb_text})


DOC_FILTERS = (Param("ticketMonth", "query", {"type": "string", "pattern": r"^\d{4}-\d{2}$"}, "YYYY-MM"),)


def _document_query(request: web.Request, employee_id: int | None):  # type: ignore[no-untyped-def]
    month = request.query.get("ticketMonth")
    if month is not None:
        try:
            Month.parse(month)
        except ValueError:
            raise field_error("ticketMonth", "must be YYYY-MM", status=400, code="bad_parameter") from None
    if employee_id is None and request.query.get("employeeId"):
        text = request.query["employeeId"]
        if not (text.isascii() and text.isdigit()) or len(text) > 15:
            raise field_error("employeeId", "must be an integer", status=400, code="bad_parameter")
        employee_id = int(text)
    return page_query(request, DOCUMENT_SORT, "createdAt", "desc", employeeId=employee_id, ticketMonth=month)


@endpoint("GET", "/employees/{id}/documents", op="listEmployeeDocuments", permissions=VIEW,
          summary="An employee's documents", params=(ID, *DOC_FILTERS, *paging_params(DOCUMENT_SORT, "createdAt", "desc")),
          replies={200: Reply(schemas.DocumentList, links=_links(FIRST, *DOCUMENT_NEXT)), 404: NOT_FOUND})
async def list_employee_documents(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    employee = await _employee(request, b2b, caller)
    query = _document_query(request, employee.id)
    found, total = await b2b.run(b2b.store.list_documents, caller.company.id, query)
    return many([document_json(d, caller.base) for d in found], query, total)


@endpoint("GET", "/employee-documents", op="listDocuments", permissions=VIEW, summary="All documents of the company",
          params=(Param("employeeId", "query", {"type": "integer"}), *DOC_FILTERS,
                  *paging_params(DOCUMENT_SORT, "createdAt", "desc")),
          replies={200: Reply(schemas.DocumentList, links=_links(FIRST, *DOCUMENT_NEXT))})
async def list_documents(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    query = _document_query(request, None)
    found, total = await b2b.run(b2b.store.list_documents, caller.company.id, query)
    return many([document_json(d, caller.base) for d in found], query, total)


@endpoint("GET", "/employee-documents/{id}", op="getDocument", permissions=VIEW, summary="A document's metadata",
          params=(ID,), replies={200: Reply(schemas.DocumentOne, links=(
              *_links("/data/id", "downloadDocument"), *_links("/data/employeeId", "getEmployee"))), 404: NOT_FOUND})
async def get_document(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    document = await b2b.run(b2b.store.get_document, caller.company.id, _id(request))
    if document is None:
        raise ApiError(404, "document not found", code="document_not_found")
    return one(document_json(document, caller.base))


@endpoint("GET", "/employee-documents/{id}/download", op="downloadDocument", permissions=VIEW, params=(ID,),
          summary="Download a document (the PDF bytes)",
          replies={200: Reply({"type": "string", "format": "binary"}, "The PDF", content_type="application/pdf"),
                   404: NOT_FOUND, 409: "Not downloadable (its ticket was revoked)"})
async def download_document(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    document = await b2b.run(b2b.store.get_document, caller.company.id, _id(request))
    if document is None:
        raise ApiError(404, "document not found", code="document_not_found")
    content = await b2b.run(b2b.store.document_content, caller.company.id, document.id) if document.downloadable \
        else None
    if content is None:
        raise ApiError(409, "this document is not downloadable (its ticket was revoked)", code="not_downloadable",
                       details=[{"field": "downloadable", "message": "false"}])
    filename = f"job-ticket-{document.month}-{document.employee_id}.pdf"
    return web.Response(body=content, content_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Cache-Control": "private, no-store"})


@endpoint("GET", "/hr-integrations", op="listHrIntegrations", permissions=VIEW_HR, summary="HR integrations",
          params=paging_params(INTEGRATION_SORT, "id", "asc"),
          replies={200: Reply(schemas.IntegrationList, links=_links(FIRST, *INTEGRATION_NEXT))})
async def list_integrations(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    query = page_query(request, INTEGRATION_SORT, "id", "asc")
    found, total = await b2b.run(b2b.store.list_integrations, caller.company.id, query)
    return many([integration_json(i, caller.base) for i in found], query, total)


async def _integration(request: web.Request, b2b: B2B, caller: Caller):  # type: ignore[no-untyped-def]
    integration = await b2b.run(b2b.store.get_integration, _id(request))
    if integration is None or integration.company_id != caller.company.id:
        raise ApiError(404, "HR integration not found", code="hr_integration_not_found")
    return integration


@endpoint("GET", "/hr-integrations/{id}", op="getHrIntegration", permissions=VIEW_HR,
          summary="An HR integration with its last sync (id, time, counts, errors)", params=(ID,),
          replies={200: Reply(schemas.IntegrationOne, links=_links("/data/id", "syncHrIntegration")), 404: NOT_FOUND})
async def get_integration(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    return one(integration_json(await _integration(request, b2b, caller), caller.base))


@endpoint("POST", "/hr-integrations/{id}/sync", op="syncHrIntegration", permissions=SYNC_PERMISSIONS,
          summary="Reconcile the full roster (by hrId) in one transaction", params=(ID,), body=roster.SyncBody,
          description="New employees are added, changed ones updated, those left out offboarded (subscription "
                      "cancelled, ticket revoked). The same syncId with the same body is a no-op (204); with another "
                      "body 409. A bad row is a 422 naming its index and field, and nothing is applied.",
          replies={204: Reply(None, "Applied (or an exact repeat of an applied sync)"), 404: NOT_FOUND,
                   409: "syncId already used with another body",
                   422: "A bad row (details: index and field), or an empty roster without allowEmptyRoster"})
async def post_sync(request: web.Request, b2b: B2B, caller: Caller) -> web.Response:
    integration = await _integration(request, b2b, caller)
    body = await read_json(request)
    try:
        await sync(b2b, integration, body, datetime.now(timezone.utc))
    except SyncReplay:
        pass
    return web.Response(status=204)
