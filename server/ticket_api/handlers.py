"""Ticket API handlers: parse, call the service (:mod:`.tickets`) or the store, answer.

Each handler's declaration gives its route, roles and OpenAPI operation (``admin`` may call
everything a token may call).
"""
from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from ..context import ctx_of, principal_of, visible_record
from ..endpoint import Api, Link, Param, Reply
from ..errors import ApiError, field_error, json_response, read_json
from ..models import ActiveStatusBody, ManifestCall, TicketBundleRequest
from ..params import PAGING, body_model, page_headers, param, path_int, q_bool, q_int, q_page, q_sort, sort_param
from ..store import EVENT_SORT_FIELDS, TICKET_SORT_FIELDS, TicketQuery
from . import tickets
from .schemas import (RecoverableStatus, RecoverStatus, RefundableStatus, RefundStatus,
                      RevokeResponse, Ticket, TicketBundle, TicketEventResult, TicketIssueResponse)

api = Api("Ticket API", "BoB Ticket API v1")

SELLERS = ("pos", "tvm")
READERS = ("ins", "pos", "tvm")
TICKET_ID = param("ticketId", "path", {"type": "string"})
PAGED = ("X-Total-Count", "Link")
NOT_FOUND = {404: "Ticket not found (or not the caller's participant's)"}
STATE_ERRORS = {404: "Ticket not found", 409: "Not possible in the ticket's state"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


FIRST_TICKET = {"ticketId": "$response.body#/ticketIds/0"}
# What a client may do with the tickets it was just given (the stateful conformance run does it).
ISSUED_LINKS = (*(Link(op, FIRST_TICKET) for op in (
    "getTicket", "getTicketActiveStatus", "putTicketActiveStatus", "getRecoverStatus", "recoverTicket",
    "getRecoverableStatus", "getRefundStatus", "refundTicket", "getRefundableStatus", "revokeTicket",
    "listTicketEvents", "postValidation", "postInspection")),
    Link("createTicketBundle", request_body={"ticketIds": "$response.body#/ticketIds"}))


@api.endpoint("POST", "/ticket", op="issueTickets", roles=SELLERS, body=ManifestCall,
              summary="Issue tickets from a manifest",
              replies={201: Reply(TicketIssueResponse, headers=("Location",), links=ISSUED_LINKS),
                       200: Reply(TicketIssueResponse, "Replay of an earlier requestId", headers=("Location",)),
                       400: "Manifest invalid, expired, badly signed or from an unknown participant",
                       409: "Manifest already used, requestId reused, or recoverTicketId not recovered"})
async def post_ticket(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    call = await body_model(request, ManifestCall)
    result = await tickets.issue(ctx, principal_of(request), call, _now())
    return json_response(result.body, status=result.status,
                         headers={"Location": ctx.absolute_url(request, result.location)})


@api.endpoint("GET", "/ticket", op="listTickets", roles=READERS, summary="Tickets of a traveller",
              description="travellerId is required, except for admin: without it an admin lists every ticket "
                          "(of every participant, or of pid), paged, newest first.",
              params=(param("travellerId", "query", {"type": "string", "minLength": 1},
                            "required except for admin"),
                      param("active", "query", {"type": "boolean"}), param("pid", "query", {"type": "integer"}),
                      param("refundable", "query", {"type": "boolean"}),
                      param("refunded", "query", {"type": "boolean"}),
                      param("requestId", "query", {"type": "string"}),
                      sort_param(TICKET_SORT_FIELDS, "issuedAt"), *PAGING),
              replies={200: Reply(list[Ticket], headers=PAGED)})
async def list_tickets(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal = principal_of(request)
    traveller = request.query.get("travellerId")
    if traveller == "" or (traveller is None and not principal.admin):
        raise field_error("travellerId", "is required", status=400, code="missing_parameter")
    pid = q_int(request, "pid", None, 0, 2 ** 53)
    if not principal.admin:
        if pid is not None and pid != principal.pid:
            return json_response([], headers={"X-Total-Count": "0"})
        pid = principal.pid
    sort_field, sort_order = q_sort(request, TICKET_SORT_FIELDS, "issuedAt", "desc")
    offset, limit = q_page(request)
    now = _now()
    query = TicketQuery(traveller_id=traveller, now=now, pid=pid, active=q_bool(request, "active"),
                        refundable=q_bool(request, "refundable"), refunded=q_bool(request, "refunded"),
                        request_id=request.query.get("requestId"), sort_field=sort_field, sort_order=sort_order,
                        offset=offset, limit=limit)
    found, total = await ctx.run(ctx.store.list_tickets, query)
    return json_response([tickets.ticket_json(t, now) for t in found],
                         headers=page_headers(request, offset, limit, total))


async def _ticket(request: web.Request) -> tickets.TicketRecord:
    return await tickets.load_ticket(ctx_of(request), principal_of(request), request.match_info["ticketId"])


@api.endpoint("GET", "/ticket/{ticketId}", op="getTicket", roles=READERS, summary="A ticket",
              params=(TICKET_ID,), replies={200: Reply(Ticket), **NOT_FOUND})
async def get_ticket(request: web.Request) -> web.Response:
    return json_response(tickets.ticket_json(await _ticket(request), _now()))


ACTIVE_STATUS = {"type": "boolean", "description": "true if the ticket is active and usable"}


@api.endpoint("GET", "/ticket/{ticketId}/active", op="getTicketActiveStatus", roles=READERS, summary="Active status",
              params=(TICKET_ID,), replies={200: Reply(ACTIVE_STATUS), **NOT_FOUND})
async def get_active(request: web.Request) -> web.Response:
    return json_response((await _ticket(request)).state in tickets.USABLE)


@api.endpoint("PUT", "/ticket/{ticketId}/active", op="putTicketActiveStatus", roles=SELLERS,
              summary="Freeze (false) or thaw (true) a ticket", params=(TICKET_ID,),
              body=bool | ActiveStatusBody, body_description="true or false, or {\"activeStatus\": bool}",
              replies={200: Reply(ACTIVE_STATUS), **STATE_ERRORS})
async def put_active(request: web.Request) -> web.Response:
    data = await read_json(request)
    if isinstance(data, dict):
        active = ActiveStatusBody.model_validate(data).activeStatus
    elif isinstance(data, bool):
        active = data
    else:
        raise field_error("activeStatus", "must be a boolean (the body is true or false)")
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "thaw" if active else "freeze", _now())
    return json_response(ticket.state in tickets.USABLE)


@api.endpoint("GET", "/ticket/{ticketId}/recoverStatus", op="getRecoverStatus", roles=READERS,
              summary="Recover status", params=(TICKET_ID,), replies={200: Reply(RecoverStatus), **NOT_FOUND})
async def get_recover_status(request: web.Request) -> web.Response:
    return json_response(tickets.recover_status(await _ticket(request)))


@api.endpoint("PUT", "/ticket/{ticketId}/recoverStatus", op="recoverTicket", roles=SELLERS, params=(TICKET_ID,),
              summary="Recover a ticket (its MTB is deny-listed; its value may be re-issued)",
              replies={200: Reply(RecoverStatus), **STATE_ERRORS})
async def put_recover_status(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "recover", _now())
    return json_response(tickets.recover_status(ticket))


@api.endpoint("GET", "/ticket/{ticketId}/recoverableStatus", op="getRecoverableStatus", roles=READERS,
              summary="Whether the ticket can be recovered, and for what amount", params=(TICKET_ID,),
              replies={200: Reply(RecoverableStatus), **NOT_FOUND})
async def get_recoverable_status(request: web.Request) -> web.Response:
    return json_response(tickets.recoverable_status(await _ticket(request), _now()))


@api.endpoint("GET", "/ticket/{ticketId}/refundStatus", op="getRefundStatus", roles=READERS,
              summary="Refund status", params=(TICKET_ID,), replies={200: Reply(RefundStatus), **NOT_FOUND})
async def get_refund_status(request: web.Request) -> web.Response:
    return json_response(tickets.refund_status(await _ticket(request)))


@api.endpoint("PUT", "/ticket/{ticketId}/refundStatus", op="refundTicket", roles=SELLERS, params=(TICKET_ID,),
              summary="Refund a ticket", replies={200: Reply(RefundStatus), **STATE_ERRORS})
async def put_refund_status(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "refund", _now())
    return json_response(tickets.refund_status(ticket))


@api.endpoint("GET", "/ticket/{ticketId}/refundableStatus", op="getRefundableStatus", roles=READERS,
              summary="Whether the ticket can be refunded, and for what amount", params=(TICKET_ID,),
              replies={200: Reply(RefundableStatus), **NOT_FOUND})
async def get_refundable_status(request: web.Request) -> web.Response:
    return json_response(tickets.refundable_status(await _ticket(request), _now()))


@api.endpoint("PUT", "/ticket/{ticketId}/revoke", op="revokeTicket", roles=SELLERS, params=(TICKET_ID,),
              summary="Revoke a ticket (deny-listed for good)", replies={200: Reply(RevokeResponse), **STATE_ERRORS})
async def put_revoke(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "revoke", _now())
    return json_response({"ticketId": ticket.ticket_id, "revoked": ticket.state == "revoked", "state": ticket.state})


@api.endpoint("GET", "/ticket/{ticketId}/event", op="listTicketEvents", roles=READERS,
              summary="Events devices posted for the ticket",
              params=(TICKET_ID, sort_param(EVENT_SORT_FIELDS, "eventId"), *PAGING),
              replies={200: Reply(list[TicketEventResult], headers=PAGED), **NOT_FOUND})
async def list_ticket_events(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal = principal_of(request)
    ticket_id = request.match_info["ticketId"]
    sort_field, sort_order = q_sort(request, EVENT_SORT_FIELDS, "eventId", "asc")
    offset, limit = q_page(request)
    ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
    poster = None
    if ticket is not None:
        await tickets.load_ticket(ctx, principal, ticket_id)  # 404 unless the caller's participant owns it
    elif not principal.admin:
        poster = principal.pid  # a foreign ticket: only the events the caller's participant posted
    events, total = await ctx.run(ctx.store.list_events, ticket_id, poster_pid=poster, sort_field=sort_field,
                                  sort_order=sort_order, offset=offset, limit=limit)
    if ticket is None and total == 0:
        raise ApiError(404, f"ticket {ticket_id!r} not found", code="ticket_not_found")
    return json_response([tickets.event_result_json(e, ticket) for e in events],
                         headers=page_headers(request, offset, limit, total))


@api.endpoint("GET", "/ticket/{ticketId}/event/{eventId}", op="getTicketEvent", roles=("val", *READERS),
              summary="One stored event (the server's eventId)",
              description="A validator may read the events it posted itself (the target of a 303).",
              params=(TICKET_ID, Param("eventId", "path", {"type": "string"})),
              replies={200: Reply(TicketEventResult), 404: "Ticket and event combination not found"})
async def get_ticket_event(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal = principal_of(request)
    ticket_id, raw_id = request.match_info["ticketId"], request.match_info["eventId"]
    not_found = ApiError(404, f"event {raw_id!r} of ticket {ticket_id!r} not found", code="event_not_found")
    event = await ctx.run(ctx.store.get_event, path_int(request, "eventId", not_found))
    if event is None or event.ticket_id != ticket_id:
        raise not_found
    ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
    if principal.role == "val":
        visible = event.sub == principal.key
    elif principal.admin:
        visible = True
    elif ticket is not None:
        visible = ticket.pid == principal.pid
    else:
        visible = event.poster_pid == principal.pid
    if not visible:
        raise not_found
    ids = await ctx.run(ctx.store.event_ids, ticket_id, tickets.RECENT_EVENT_IDS) if ticket else None
    return json_response(tickets.event_result_json(event, ticket, ids))


@api.endpoint("POST", "/ticketbundle", op="createTicketBundle", roles=SELLERS, body=TicketBundleRequest,
              summary="A new bundle (and MTB) holding a subset of one bundle's tickets",
              replies={201: Reply(TicketBundle, headers=("Location",), links=(
                           Link("getTicketBundle", {"ticketBundleId": "$response.body#/ticketBundleId"}),)),
                       400: "The tickets come from different ticket bundles",
                       409: "A ticket is not active or frozen"})
async def post_ticketbundle(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await body_model(request, TicketBundleRequest)
    bundle = await tickets.make_bundle(ctx, principal_of(request), body.ticketIds, _now())
    return json_response(tickets.bundle_json(bundle), status=201,
                         headers={"Location": ctx.absolute_url(request, f"/ticketbundle/{tickets.segment(bundle.bundle_id)}")})


@api.endpoint("GET", "/ticketbundle/{ticketBundleId}", op="getTicketBundle", roles=READERS,
              summary="A ticket bundle", params=(Param("ticketBundleId", "path", {"type": "string"}),),
              replies={200: Reply(TicketBundle), 404: "Ticket bundle not found"})
async def get_ticketbundle(request: web.Request) -> web.Response:
    bundle = await visible_record(request, ctx_of(request).store.get_bundle, "ticketBundleId", "ticket bundle",
                                  "bundle_not_found")
    return json_response(tickets.bundle_json(bundle))
