"""The B2B API's JSON: the published resource shapes, built from records (pure functions).

Field names are the published ones, including ``hrIntergartionLinks`` (sic): the employee
resource on the public pages spells it that way, and clients written against those pages read
that key. ``_links`` hold absolute URLs (HAL), built from the ``base`` the caller passes.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from mtb.timeutil import format_extended

from .records import Document, Employee, Integration
from .subscription import Dates

JSON_LINK = "application/json"


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _instant(value: datetime | None) -> str | None:
    """``2024-05-10T08:00:00Z``: UTC, whole seconds, as the published examples write it."""
    return None if value is None else format_extended(value.replace(microsecond=0)).replace(".000Z", "Z")


def link(base: str, path: str, content_type: str = JSON_LINK) -> dict[str, str]:
    return {"href": base + path, "type": content_type}


def subscription_json(status: str, dates: Dates, next_ticket_at: date | None) -> dict[str, Any]:
    return {"status": status, "startAt": _day(dates.start_at), "nextTicketAt": _day(next_ticket_at),
            "pausedAt": _day(dates.paused_at), "cancelledAt": _day(dates.cancelled_at),
            "reactivatedAt": _day(dates.reactivated_at)}


def employee_json(employee: Employee, base: str, currency: str) -> dict[str, Any]:
    profile = employee.profile
    ticket = None
    if employee.ticket is not None:
        t = employee.ticket
        ticket_path = f"/employees/{employee.id}/ticket"
        ticket = {"ticketId": t.ticket_id, "ticketMonth": str(t.month), "validFrom": _day(t.valid_from),
                  "validUntil": _day(t.valid_until),
                  # No wallet passes here: both links lead to the MTB itself (see the README).
                  "links": {"apple": base + ticket_path, "google": base + ticket_path}}
    return {
        "id": employee.id, "firstName": profile.first_name, "lastName": profile.last_name, "email": profile.email,
        "dateOfBirth": _day(profile.date_of_birth), "profileImage": profile.profile_image, "resource": "employee",
        "subscription": subscription_json(employee.status, employee.dates, employee.next_ticket_at),
        "plan": {"type": profile.plan.type, "contractSigningStatus": profile.plan.contract_signing_status,
                 "employeeContributionAmount": profile.plan.contribution_json(currency)},
        "ticket": ticket,
        "hrIntergartionLinks": [{"type": "hr-integration", "hrId": employee.hr_id,
                                 "hrIntegrationId": employee.integration_id, "lastSyncId": employee.last_sync_id,
                                 "lastSynced": _instant(employee.last_synced)}],
        "_links": {"self": link(base, f"/employees/{employee.id}"),
                   "employeeDocuments": link(base, f"/employees/{employee.id}/documents")},
    }


def subscription_event_payload(employee_id: int, status: str, dates: Dates, next_ticket_at: date | None) -> dict:
    """``employee-subscription-changed``: only id, resource and subscription, as published."""
    return {"id": employee_id, "resource": "employee", "subscription": subscription_json(status, dates, next_ticket_at)}


def document_json(document: Document, base: str) -> dict[str, Any]:
    return {
        "id": document.id, "employeeId": document.employee_id, "documentName": document.name,
        "documentFileType": document.file_type, "downloadable": document.downloadable,
        "createdAt": _instant(document.created_at), "updatedAt": _instant(document.updated_at),
        "resource": "employee-document",
        "_links": {"self": link(base, f"/employee-documents/{document.id}"),
                   "employee": link(base, f"/employees/{document.employee_id}"),
                   "download": link(base, f"/employee-documents/{document.id}/download", "application/pdf")},
    }


def document_event_payload(document: Document) -> dict[str, Any]:
    """``new-employee-document-generated``: the published ``id`` and ``employeeId``, plus the
    rest of the document's metadata (no links: a receiver has no base URL to trust)."""
    return {"id": document.id, "employeeId": document.employee_id, "resource": "employee-document",
            "documentName": document.name, "documentFileType": document.file_type,
            "downloadable": document.downloadable, "ticketMonth": str(document.month),
            "createdAt": _instant(document.created_at)}


def integration_json(integration: Integration, base: str) -> dict[str, Any]:
    return {
        "id": integration.id, "name": integration.name, "status": integration.status, "resource": "hr-integration",
        "lastSyncId": integration.last_sync_id, "lastSyncedAt": _instant(integration.last_synced_at),
        "counts": {"added": integration.added, "updated": integration.updated, "offboarded": integration.offboarded},
        "errors": integration.errors or [],
        "createdAt": _instant(integration.created_at),
        "_links": {"self": link(base, f"/hr-integrations/{integration.id}"),
                   "sync": link(base, f"/hr-integrations/{integration.id}/sync")},
    }


def segment(text: str) -> str:
    return quote(text, safe="")
