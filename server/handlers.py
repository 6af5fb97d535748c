"""HTTP handlers: parse, call the service or the store, answer. No SQL and no business rules
beyond argument checks live here (rules: :mod:`server.tickets`; storage: :mod:`server.store`).

Each handler carries the roles that may call it (:func:`server.auth.allow`); ``admin`` may
call everything. The route table is in :mod:`server.app`.
"""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from mtb.keys import derive_device_key
from mtb import b64url_encode
from mtb.timeutil import format_extended

from . import auth, manifest, openapi, tickets
from .auth import BASIC, PUBLIC, Principal, allow
from .config import STOPS_FILE
from .context import Context, ctx_of, principal_of
from .errors import ApiError, field_error, from_validation, json_response, read_json
from .models import (ActiveStatusBody, DeviceKeyRequest, ManifestCall, ManifestRequest, TicketBundleRequest,
                     TicketEvent)
from .store import EVENT_SORT_FIELDS, SORT_ORDERS, TICKET_SORT_FIELDS, EventRecord, NewEvent, TicketQuery

MAX_PAGE = 100
BLACKLIST_DEFAULT, BLACKLIST_MAX = 1000, 10_000
_EVENTS = TypeAdapter(list[TicketEvent])


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- query parameters -------------------------------------------------------------------------

def q_bool(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise field_error(name, "must be true or false", status=400, code="bad_parameter")


def q_int(request: web.Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    # ASCII only: str.isdigit() also passes '²' (int() then raises: a 500) and '١' (Arabic-Indic 1)
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise field_error(name, "must be a non-negative integer", status=400, code="bad_parameter")
    number = int(value)
    if not lo <= number <= hi:
        raise field_error(name, f"must be between {lo} and {hi}", status=400, code="bad_parameter")
    return number


def q_sort(request: web.Request, allowed: dict[str, str], default_field: str, default_order: str) -> tuple[str, str]:
    sort_field = request.query.get("sortField", default_field)
    sort_order = request.query.get("sortOrder", default_order).lower()
    if sort_field not in allowed:
        raise field_error("sortField", f"must be one of {', '.join(allowed)}", status=400, code="bad_parameter")
    if sort_order not in SORT_ORDERS:
        raise field_error("sortOrder", "must be asc or desc", status=400, code="bad_parameter")
    return sort_field, sort_order


def q_page(request: web.Request) -> tuple[int, int]:
    """``page``/``pageSize`` (1-based) or ``offset``/``limit``; at most 100 a page."""
    paged = "page" in request.query or "pageSize" in request.query
    if paged and ("offset" in request.query or "limit" in request.query):
        raise field_error("page", "use page/pageSize or offset/limit, not both", status=400, code="bad_parameter")
    if paged:
        size = q_int(request, "pageSize", MAX_PAGE, 1, MAX_PAGE) or MAX_PAGE
        page = q_int(request, "page", 1, 1, 10_000_000) or 1
        return (page - 1) * size, size
    limit = q_int(request, "limit", MAX_PAGE, 1, MAX_PAGE) or MAX_PAGE
    return q_int(request, "offset", 0, 0, 10 ** 12) or 0, limit


def page_headers(request: web.Request, offset: int, limit: int, total: int) -> dict[str, str]:
    headers = {"X-Total-Count": str(total)}
    if offset + limit < total:
        query = {k: v for k, v in request.query.items() if k not in ("page", "pageSize", "offset", "limit")}
        url = request.rel_url.with_query({**query, "offset": offset + limit, "limit": limit})
        headers["Link"] = f'<{url}>; rel="next"'
    return headers


async def body_model(request: web.Request, model: Any) -> Any:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise field_error("(body)", "must be a JSON object")
    return model.model_validate(data)


# --- auth -------------------------------------------------------------------------------------

@allow(BASIC)
async def get_auth(request: web.Request) -> web.Response:
    """Failed logins are counted per client address, successful ones per credential: someone
    guessing a device's password slows down only themselves, never the device's own calls."""
    ctx = ctx_of(request)
    entity_id = request.match_info["entityId"]
    failures = f"login-failures:{request.remote or '?'}"
    auth.check_not_blocked(ctx, failures)  # before the (deliberately slow) password hash
    user, password = auth.parse_basic(request.headers.get("Authorization"))
    cred = await ctx.run(ctx.store.get_credential, entity_id) if user == entity_id else None
    ok = await asyncio.to_thread(auth.verify_password, password, cred.password_hash if cred else None)
    if not ok or cred is None:
        auth.check_rate(ctx, failures)
        raise ApiError(401, "invalid credentials", code="invalid_credentials",
                           headers={"WWW-Authenticate": 'Basic realm="bob"'})
    auth.check_rate(ctx, entity_id)
    token = auth.issue_token(ctx.keyring, cred.entity_id, cred.role, _now(), ctx.config.token_lifetime_seconds)
    return json_response({"jwtCompact": token}, headers={"Cache-Control": "no-store"})


@allow(PUBLIC)
async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document(request.app))


# --- feeds ------------------------------------------------------------------------------------

def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


@allow("val", "ins", "pos", "tvm")
async def get_participant_metadata(request: web.Request) -> web.Response:
    metadata = ctx_of(request).keyring.metadata
    headers = {"ETag": metadata.etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("If-None-Match"), metadata.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=metadata.body, content_type="application/json", headers=headers)


@allow("val", "ins", "pos", "tvm")
async def get_stops(request: web.Request) -> web.Response:
    """The operator's GTFS ``stops.txt`` (stop areas and their ``zone_id``), placed in the data
    directory; devices map their position to a stop area and zone with it."""
    ctx = ctx_of(request)
    path = Path(ctx.config.data_dir or ".") / STOPS_FILE
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise ApiError(404, f"no {STOPS_FILE} in this deployment", code="no_stops") from None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="text/csv", charset="utf-8", headers=headers)


@allow("val", "ins")
async def get_device_kdk(request: web.Request) -> web.Response:
    kdks = ctx_of(request).keyring.kdks
    return json_response([{"kid": kid, "key": b64url_encode(key)} for kid, key in kdks],
                         headers={"Cache-Control": "no-store"})


@allow("pos", "tvm")
async def post_device_key(request: web.Request) -> web.Response:
    body = await body_model(request, DeviceKeyRequest)
    kid, kdk = ctx_of(request).keyring.current_kdk
    return json_response({"did": body.did, "kid": kid, "deviceKey": b64url_encode(derive_device_key(kdk, body.did))},
                         headers={"Cache-Control": "no-store"})


@allow("val", "ins", "pos", "tvm")
async def get_blacklist(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    after = q_int(request, "blacklistEntryId", 0, 0, 2 ** 62) or 0
    limit = q_int(request, "limit", BLACKLIST_DEFAULT, 1, BLACKLIST_MAX) or BLACKLIST_DEFAULT
    entries = await ctx.run(ctx.store.deny_since, after, limit)
    out = []
    for entry in entries:
        item: dict[str, Any] = {"blacklistEntryId": entry.entry_id}
        for key, value in (("ticketId", entry.ticket_id), ("travellerId", entry.traveller_id),
                           ("tokenId", entry.token_id)):
            if value is not None:
                item[key] = value
        item["expire"] = format_extended(entry.expire)
        out.append(item)
    return json_response(out)


# --- device events ----------------------------------------------------------------------------

def _check_kind(events: list[TicketEvent], kind: str, prefix: str | None) -> None:
    for index, event in enumerate(events):
        if event.eventType is not None and event.eventType != kind:
            field = f"{prefix}[{index}].eventType" if prefix is not None else "eventType"
            raise field_error(field, f"must be {kind!r} on this endpoint")


def _new_event(raw: dict[str, Any], event: TicketEvent, kind: str) -> NewEvent:
    body = {k: v for k, v in raw.items() if k != "eventId"}
    body.setdefault("eventType", kind)
    return NewEvent(local_event_id=event.localEventId, ticket_id=event.ticketId, event_time=event.time,
                    event_result=event.eventResult, body=body)


def event_result_json(ctx: Context, event: EventRecord, ticket: tickets.TicketRecord | None = None,
                      event_ids: list[int] | None = None) -> dict[str, Any]:
    body = {**event.body, "eventId": str(event.event_id)}
    status = event.event_result if event.event_result is not None else 0
    result: dict[str, Any] = {"ticketEvent": body, "ticketEventStatus": status}
    if ticket is not None:
        metadata: dict[str, Any] = {"relativeValidityStart": format_extended(ticket.valid_from)}
        if event_ids is not None:
            metadata["ticketEventIds"] = [str(i) for i in event_ids]
        result["ticketMetadata"] = metadata
        if ticket.state not in tickets.USABLE:
            result["ticketEventInspectMessage"] = f"Ticket is {ticket.state} on the server"
            result["ticketEventPassengerMessage"] = "Ticket not valid"
    return result


def post_events(kind: str):
    @allow("val" if kind == "validation" else "ins")
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal: Principal = principal_of(request)
        data = await read_json(request)
        if not isinstance(data, list):
            raise field_error("(body)", "must be a JSON array of ticketEvents")
        if len(data) > ctx.config.max_batch_events:
            raise ApiError(413, f"batch of {len(data)} events exceeds {ctx.config.max_batch_events}",
                                  code="batch_too_large",
                                  details=[{"field": "(body)", "message": f"at most {ctx.config.max_batch_events}"}])
        try:
            events = _EVENTS.validate_python(data)
        except ValidationError as exc:
            raise from_validation(exc) from None
        _check_kind(events, kind, "")
        new = [_new_event(raw, ev, kind) for raw, ev in zip(data, events)]
        stored = await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind, _now(), new)
        return json_response([{"localEventId": ev.localEventId, "eventId": str(event_id), "duplicate": dup}
                              for ev, (event_id, dup) in zip(events, stored)], status=201)

    handler.__name__ = f"post_{kind}"
    return handler


def post_event(kind: str):
    @allow("val" if kind == "validation" else "ins")
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal: Principal = principal_of(request)
        ticket_id = request.match_info["ticketId"]
        data = await read_json(request)
        if not isinstance(data, dict):
            raise field_error("(body)", "must be a JSON object (one ticketEvent)")
        if data.setdefault("ticketId", ticket_id) != ticket_id:
            raise field_error("ticketId", "differs from the ticket id in the path")
        event = TicketEvent.model_validate(data)
        _check_kind([event], kind, None)
        [(event_id, duplicate)] = await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind,
                                                _now(), [_new_event(data, event, kind)])
        stored = await ctx.run(ctx.store.get_event, event_id)
        assert stored is not None
        # the ticket id is the client's text: percent-encoded, or a '\n' in it made aiohttp drop the
        # connection after the event was stored (and every retry again), and a '/' pointed elsewhere
        location = ctx.url(f"/ticket/{quote(stored.ticket_id, safe='')}/event/{event_id}")
        if duplicate:
            return json_response({"code": "duplicate_event", "message": "this localEventId was already stored",
                                  "eventId": str(event_id)}, status=303, headers={"Location": location})
        ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
        ids = await ctx.run(ctx.store.event_ids, ticket_id, tickets.MAX_EVENT_IDS) if ticket else None
        return json_response(event_result_json(ctx, stored, ticket, ids), status=201, headers={"Location": location})

    handler.__name__ = f"post_{kind}_ticket"
    return handler


# --- tickets ----------------------------------------------------------------------------------

@allow("pos", "tvm")
async def post_manifest(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await body_model(request, ManifestRequest)
    template, claims = manifest.create(ctx.keyring, body, _now(), ctx.config.manifest_lifetime_seconds)
    return json_response({"manifestMtbTemplate": template, "manifestId": claims["manifestId"],
                          "expires": format_extended(datetime.fromtimestamp(claims["exp"], timezone.utc))},
                         status=201)


@allow("pos", "tvm")
async def post_ticket(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    call = await body_model(request, ManifestCall)
    result = await tickets.issue(ctx, principal_of(request), call, _now())
    return json_response(result.body, status=result.status, headers={"Location": result.location})


@allow("ins", "pos", "tvm")
async def list_tickets(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal: Principal = principal_of(request)
    traveller = request.query.get("travellerId")
    if not traveller:
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


@allow("ins", "pos", "tvm")
async def get_ticket(request: web.Request) -> web.Response:
    return json_response(tickets.ticket_json(await _ticket(request), _now()))


@allow("ins", "pos", "tvm")
async def get_active(request: web.Request) -> web.Response:
    return json_response((await _ticket(request)).state in tickets.USABLE)


@allow("pos", "tvm")
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


@allow("ins", "pos", "tvm")
async def get_recover_status(request: web.Request) -> web.Response:
    return json_response(tickets.recover_status(await _ticket(request)))


@allow("pos", "tvm")
async def put_recover_status(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "recover", _now())
    return json_response(tickets.recover_status(ticket))


@allow("ins", "pos", "tvm")
async def get_recoverable_status(request: web.Request) -> web.Response:
    return json_response(tickets.recoverable_status(await _ticket(request), _now()))


@allow("ins", "pos", "tvm")
async def get_refund_status(request: web.Request) -> web.Response:
    return json_response(tickets.refund_status(await _ticket(request)))


@allow("pos", "tvm")
async def put_refund_status(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "refund", _now())
    return json_response(tickets.refund_status(ticket))


@allow("ins", "pos", "tvm")
async def get_refundable_status(request: web.Request) -> web.Response:
    return json_response(tickets.refundable_status(await _ticket(request), _now()))


@allow("pos", "tvm")
async def put_revoke(request: web.Request) -> web.Response:
    ticket = await tickets.apply(ctx_of(request), principal_of(request), request.match_info["ticketId"],
                                 "revoke", _now())
    return json_response({"ticketId": ticket.ticket_id, "revoked": ticket.state == "revoked", "state": ticket.state})


@allow("ins", "pos", "tvm")
async def list_ticket_events(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal: Principal = principal_of(request)
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
    return json_response([event_result_json(ctx, e, ticket) for e in events],
                         headers=page_headers(request, offset, limit, total))


@allow("val", "ins", "pos", "tvm")
async def get_ticket_event(request: web.Request) -> web.Response:
    """A validator may read the events it posted itself (the target of a 303)."""
    ctx = ctx_of(request)
    principal: Principal = principal_of(request)
    ticket_id, raw_id = request.match_info["ticketId"], request.match_info["eventId"]
    not_found = ApiError(404, f"event {raw_id!r} of ticket {ticket_id!r} not found", code="event_not_found")
    if not raw_id.isdigit() or len(raw_id) > 18:
        raise not_found
    event = await ctx.run(ctx.store.get_event, int(raw_id))
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
    ids = await ctx.run(ctx.store.event_ids, ticket_id, tickets.MAX_EVENT_IDS) if ticket else None
    return json_response(event_result_json(ctx, event, ticket, ids))


@allow("pos", "tvm")
async def post_ticketbundle(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await body_model(request, TicketBundleRequest)
    bundle = await tickets.make_bundle(ctx, principal_of(request), body.ticketIds, _now())
    return json_response(tickets.bundle_json(bundle), status=201,
                         headers={"Location": ctx.url(f"/ticketbundle/{bundle.bundle_id}")})


@allow("ins", "pos", "tvm")
async def get_ticketbundle(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    principal: Principal = principal_of(request)
    bundle_id = request.match_info["ticketBundleId"]
    bundle = await ctx.run(ctx.store.get_bundle, bundle_id)
    if bundle is None or not (principal.admin or bundle.pid == principal.pid):
        raise ApiError(404, f"ticket bundle {bundle_id!r} not found", code="bundle_not_found")
    return json_response(tickets.bundle_json(bundle))

