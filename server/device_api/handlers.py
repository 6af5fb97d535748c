"""Device API handlers: the feeds a validator or inspection device pulls (participant
metadata, KDKs, stops, the deny list), a wallet's device key, and event ingest."""
from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

import mtb
from mtb import b64url_encode
from mtb.keys import KeyStore, derive_device_key
from mtb.timeutil import format_extended

from ..config import STOPS_FILE
from ..context import ctx_of, principal_of
from ..endpoint import Api, Param, Reply
from ..errors import ApiError, field_error, from_validation, json_response, read_json
from ..models import DeviceKeyRequest, TicketEvent
from ..params import body_model, param, q_int
from ..store import NewEvent
from ..ticket_api import tickets
from ..ticket_api.schemas import TicketEventResult
from . import online
from .schemas import BlacklistEntry, DeviceKey, Kdk, Participant

api = Api("Device API", "What validators and inspection devices call (BoB Validation and Inspection APIs)")

DEVICES = ("val", "ins")
EVERY_ROLE = ("val", "ins", "pos", "tvm")
DENY_DEFAULT, DENY_MAX = 1000, 10_000
IF_NONE_MATCH = Param("If-None-Match", "header", {"type": "string"})
NOT_MODIFIED = Reply(None, "Not modified (If-None-Match matched the ETag)")
_EVENTS = TypeAdapter(list[TicketEvent])


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


@api.endpoint("GET", "/participantMetadata", op="getParticipantMetadata", roles=EVERY_ROLE,
              summary="Participants with their MTB and auth-token public keys (JWK); strong ETag",
              params=(IF_NONE_MATCH,), replies={200: Reply(list[Participant], headers=("ETag",)), 304: NOT_MODIFIED})
async def get_participant_metadata(request: web.Request) -> web.Response:
    metadata = ctx_of(request).keyring.metadata
    headers = {"ETag": metadata.etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("If-None-Match"), metadata.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=metadata.body, content_type="application/json", headers=headers)


@api.endpoint("GET", "/stops", op="getStops", roles=EVERY_ROLE, params=(IF_NONE_MATCH,),
              summary="The operator's GTFS stops.txt (stop areas with zone_id); strong ETag",
              description="Stop areas and their zone_id, placed in the server's data directory; devices map "
                          "their position to a stop area and zone with it.",
              replies={200: Reply({"type": "string"}, "GTFS stops.txt", headers=("ETag",), content_type="text/csv"),
                       304: NOT_MODIFIED, 404: "This deployment publishes no stops"})
async def get_stops(request: web.Request) -> web.Response:
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


@api.endpoint("GET", "/device/kdk", op="getDeviceKdk", roles=DEVICES,
              summary="Key-derivation keys for device signatures", replies={200: Reply(list[Kdk])})
async def get_device_kdk(request: web.Request) -> web.Response:
    kdks = ctx_of(request).keyring.kdks
    return json_response([{"kid": kid, "key": b64url_encode(key)} for kid, key in kdks],
                         headers={"Cache-Control": "no-store"})


@api.endpoint("POST", "/device/key", op="postDeviceKey", roles=("val", "pos", "tvm"), body=DeviceKeyRequest,
              summary="A wallet device's HS256 key, derived from the current KDK", replies={201: Reply(DeviceKey)})
async def post_device_key(request: web.Request) -> web.Response:
    body = await body_model(request, DeviceKeyRequest)
    kid, kdk = ctx_of(request).keyring.current_kdk
    return json_response({"did": body.did, "kid": kid, "deviceKey": b64url_encode(derive_device_key(kdk, body.did))},
                         status=201, headers={"Cache-Control": "no-store"})


@api.endpoint("GET", "/blacklist", op="getBlacklist", roles=EVERY_ROLE,
              summary="Deny-list entries with id > blacklistEntryId, oldest first",
              params=(param("blacklistEntryId", "query", {"type": "integer", "minimum": 0, "default": 0}),
                      param("limit", "query", {"type": "integer", "minimum": 1, "maximum": DENY_MAX,
                                               "default": DENY_DEFAULT})),
              replies={200: Reply(list[BlacklistEntry])})
async def get_blacklist(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    after = q_int(request, "blacklistEntryId", 0, 0, 2 ** 62) or 0
    limit = q_int(request, "limit", DENY_DEFAULT, 1, DENY_MAX) or DENY_DEFAULT
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


# --- event ingest -----------------------------------------------------------------------------

def mtb_ref(pid: int, issuer_signature: str) -> str:
    """How the store keys an MTB: its issuer's pid and its issuer signature (``mtbReference``)."""
    return f"{pid}:{issuer_signature}"


def _check_kind(events: list[TicketEvent], kind: str, prefix: str | None) -> None:
    for index, event in enumerate(events):
        if event.eventType is not None and event.eventType != kind:
            field = f"{prefix}[{index}].eventType" if prefix is not None else "eventType"
            raise field_error(field, f"must be {kind!r} on this endpoint")


def _new_event(raw: dict[str, Any], event: TicketEvent, kind: str) -> NewEvent:
    body = {k: v for k, v in raw.items() if k != "eventId"}
    body.setdefault("eventType", kind)
    ref = event.mtbReference
    return NewEvent(local_event_id=event.localEventId, ticket_id=event.ticketId, event_time=event.time,
                    event_result=event.eventResult, body=body,
                    mtb_ref=mtb_ref(ref.pid, ref.issuerSignature) if ref else None,
                    lat=event.geo.lat if event.geo else None, long=event.geo.long if event.geo else None)


def _batch(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal = principal_of(request)
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
        await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind, _now(), new)
        return web.Response(status=200)  # BoB: the whole batch is stored (or refused), no body

    return handler


async def _online(request: web.Request, event: TicketEvent, data: dict[str, Any], text: str) -> None:
    """Decide an event that came with its MTB and without a result; the verdict goes into the
    stored event (eventResult, eventReason, and the MTB's mtbReference when it had none)."""
    ctx = ctx_of(request)
    try:
        scanned = mtb.decode(text)
    except mtb.MtbFormatError as exc:
        verdict = online.Verdict(1, f"unreadable MTB: {exc}")
    else:
        ticket = next((t for t in scanned.tickets if t.ticket_id == event.ticketId), None)
        iid, signature = scanned.issuer.header.iid, mtb.b64url_encode(scanned.issuer.signature)
        now = _now()
        denied = await ctx.run(lambda: ctx.store.denied(now, ticket_id=event.ticketId,
                                                        traveller_id=ticket.traveller_id if ticket else None))
        near = await ctx.run(ctx.store.nearest_placed_event, mtb_ref(int(iid), signature), event.time) \
            if iid.isdigit() else None
        sighting = online.Sighting(near.body["geo"]["lat"], near.body["geo"]["long"], near.event_time) if near else None
        ring = ctx.keyring
        keys = KeyStore(issuer_keys=ring.metadata.keystore.issuer_keys, kdks=dict(ring.kdks))
        verdict = online.decide(scanned, event.ticketId, event, online.Facts(keys, denied, sighting))
        if "mtbReference" not in data and iid.isdigit():
            data["mtbReference"] = {"pid": int(iid), "issuerSignature": signature}
    data["eventResult"], data["eventReason"] = verdict.code, verdict.reason


def _single(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal = principal_of(request)
        ticket_id = request.match_info["ticketId"]
        data = await read_json(request)
        if not isinstance(data, dict):
            raise field_error("(body)", "must be a JSON object (one ticketEvent)")
        if data.setdefault("ticketId", ticket_id) != ticket_id:
            raise field_error("ticketId", "differs from the ticket id in the path")
        event = TicketEvent.model_validate(data)
        _check_kind([event], kind, None)
        text = request.query.get("mtb")
        if text is not None and event.eventResult is None:
            await _online(request, event, data, text)
            event = TicketEvent.model_validate(data)
        [(event_id, duplicate)] = await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind,
                                                _now(), [_new_event(data, event, kind)])
        stored = await ctx.run(ctx.store.get_event, event_id)
        assert stored is not None
        location = ctx.absolute_url(request, f"/ticket/{tickets.segment(stored.ticket_id)}/event/{event_id}")
        if duplicate:
            return json_response({"code": "duplicate_event", "message": "this localEventId was already stored",
                                  "eventId": str(event_id)}, status=303, headers={"Location": location})
        ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
        ids = await ctx.run(ctx.store.event_ids, ticket_id, tickets.MAX_EVENT_IDS) if ticket else None
        return json_response(tickets.event_result_json(stored, ticket, ids), status=201,
                             headers={"Location": location})

    return handler


MTB_PARAM = Param("mtb", "query", {"type": "string"},
                  "the MTB as read (base64url, zlib+base64url): with no eventResult, the server decides (online "
                  "validation)")

for _kind, _role in (("validation", "val"), ("inspection", "ins")):
    _title = _kind.capitalize()
    api.endpoint("POST", f"/{_kind}", op=f"post{_title}s", roles=_role, body=list[TicketEvent],
                 body_description="at most max_batch_events (1000) events",
                 summary=f"Store a batch of {_kind} events (all or nothing; deduplicated by device and localEventId)",
                 description="BoB's report: 200 with no body when every event is stored (or was before); an "
                             "error stores none of them.",
                 replies={200: Reply(None, "Stored, all of them"), 413: "Batch too large"})(_batch(_kind))
    api.endpoint("POST", f"/{_kind}/{{ticketId}}", op=f"post{_title}", roles=_role, body=TicketEvent,
                 summary=f"Store one {_kind} event for a ticket; online {_kind} when the MTB is given",
                 description="Offline: the event carries its eventResult and is stored. Online: no eventResult and "
                             "the MTB in `mtb`; the server decides (ticketEventStatus is the result code) and "
                             "stores the event with its verdict. With neither, the event is stored and its result "
                             "stays unknown (no ticketEventStatus). Events about tickets of other participants are "
                             "stored too.",
                 params=(Param("ticketId", "path", {"type": "string"}), MTB_PARAM),
                 replies={201: Reply(TicketEventResult, headers=("Location",)),
                          303: Reply(None, "localEventId seen before; Location names the stored event",
                                     headers=("Location",))})(_single(_kind))
