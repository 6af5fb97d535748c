"""Device API handlers: the feeds a validator or inspection device pulls (participant
metadata, KDKs, stops, the deny list), a wallet's device key, and event ingest."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

import mtb
from mtb import b64url_encode
from mtb.keys import KeyStore, derive_device_key
from mtb.timeutil import format_extended

from ..config import STOPS_FILE
from ..context import ctx_of, principal_of
from ..endpoint import Api, Link, Param, Reply
from ..errors import ApiError, json_response, read_json
from ..etags import IF_NONE_MATCH, NOT_MODIFIED, etag_matches, strong_etag
from ..models import EVENT_MODELS, DeviceKeyRequest
from ..params import DEVICES, FEED_MAX, body_model, feed_params, feed_window, page_headers, param, q_int
from ..store import NewEvent
from ..ticket_api import tickets
from ..ticket_api.schemas import TicketEventResult
from . import events, online
from .events import mtb_ref
from .feeds import MAX_WAIT_SECONDS
from .schemas import BlacklistEntry, DeviceKey, Kdk, Participant, Use

api = Api("Device API", "What validators and inspection devices call (BoB Validation and Inspection APIs)")

EVERY_ROLE = ("val", "ins", "pos", "tvm")
USES_DEFAULT = 1000


def _now() -> datetime:
    return datetime.now(timezone.utc)


@api.endpoint("GET", "/participantMetadata", op="getParticipantMetadata", roles=EVERY_ROLE,
              summary="Participants with their MTB and auth-token public keys (JWK); strong ETag",
              params=(IF_NONE_MATCH,), replies={200: Reply(list[Participant], headers=("ETag",)), 304: NOT_MODIFIED})
async def get_participant_metadata(request: web.Request) -> web.Response:
    metadata = ctx_of(request).keyring.metadata
    headers = {"ETag": metadata.etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), metadata.etag):
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
    etag = strong_etag(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), etag):
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


FEED_DESCRIPTION = ("Pages like every other list (page/pageSize or offset/limit, sortField/sortOrder, X-Total-Count, "
                    f"Link rel=next): 100 entries a page unless asked; a device (val, ins) may ask for up to {FEED_MAX}, "
                    "every other role for up to 100. A device follows the feed by asking for ids above the last one "
                    "it holds.")
WAIT = param("wait", "query", {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
             "long-poll: when nothing is beyond the id yet, answer as soon as something commits, or after "
             "this many seconds (at most the server's long_poll_max_seconds) with an empty page")


async def _long_poll(request: web.Request, feed: str, after: int, read: Any) -> Any:
    """``read()`` now; when it finds nothing and the request may wait, again once the feed moves."""
    page = await read()
    wait = min(q_int(request, "wait", 0, 0, MAX_WAIT_SECONDS) or 0, ctx_of(request).config.long_poll_max_seconds)
    if not page[0] and wait:
        if await ctx_of(request).feeds[feed].wait_beyond(after, wait) > after:
            page = await read()
    return page


@api.endpoint("GET", "/blacklist", op="getBlacklist", roles=EVERY_ROLE,
              summary="Deny-list entries with id > blacklistEntryId, oldest first; wait=S long-polls",
              description=FEED_DESCRIPTION + " Ids are never reused and commit in id order, so nothing is skipped. "
                          "With wait=S an empty answer is held until an entry commits (on any server process) or "
                          "S seconds pass.",
              params=(*feed_params("blacklistEntryId"), WAIT),
              replies={200: Reply(list[BlacklistEntry], headers=("X-Total-Count", "Link"))})
async def get_blacklist(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    window = feed_window(request, "blacklistEntryId", device=principal_of(request).role in DEVICES)
    rows, total = await _long_poll(request, "deny", window.after, lambda: ctx.run(
        ctx.store.deny_page, window.after, offset=window.offset, limit=window.limit, sort_order=window.sort_order))
    out = []
    for row in rows:  # stored in the wire form: no time parsed and formatted again
        item: dict[str, Any] = {"blacklistEntryId": row["id"]}
        for key, column in (("ticketId", "ticket_id"), ("travellerId", "traveller_id"), ("tokenId", "token_id")):
            if row[column] is not None:
                item[key] = row[column]
        item["expire"] = row["expire"]
        out.append(item)
    return json_response(out, headers=page_headers(request, window.offset, window.limit, total))


@api.endpoint("GET", "/uses", op="getUses", roles=DEVICES,
              summary="Accepted uses (validations) with id > useId, oldest first, within the uses horizon; "
                      "wait=S long-polls",
              description="For passback and travel-speed checks across devices: every accepted validation "
                          "(eventResult 0) any device uploaded, per ticket, while it is younger than "
                          "uses_horizon_seconds. Pulled by id like the deny list (an id once given is never "
                          "followed by a smaller one) and pushed like it with wait=S.",
              params=(param("useId", "query", {"type": "integer", "minimum": 0, "default": 0}),
                      param("limit", "query", {"type": "integer", "minimum": 1, "maximum": FEED_MAX,
                                               "default": USES_DEFAULT}), WAIT),
              replies={200: Reply(list[Use])})
async def get_uses(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    after = q_int(request, "useId", 0, 0, 2 ** 62) or 0
    limit = q_int(request, "limit", USES_DEFAULT, 1, FEED_MAX) or USES_DEFAULT
    watch = ctx.feeds["uses"]

    async def read() -> tuple[list[tuple[int, str]], None]:
        since = _now() - timedelta(seconds=ctx.config.uses_horizon_seconds)
        return await ctx.run(ctx.store.uses_since, after, await watch.current(), since, limit), None

    page, _ = await _long_poll(request, "uses", after, read)
    # the stored entries are the wire form: the id goes in front, nothing is parsed
    body = "[" + ",".join(f'{{"useId":{use_id},{entry[1:]}' for use_id, entry in page) + "]"
    return web.Response(text=body, content_type="application/json")


# --- event ingest -----------------------------------------------------------------------------

def use_entry(event: NewEvent, device: str) -> str:
    """The uses-feed entry (wire JSON, without its id) of an accepted validation."""
    entry: dict[str, Any] = {"ticketId": event.ticket_id, "time": format_extended(event.event_time),
                             "device": device}
    stop, zone, geo = event.body.get("stopArea"), event.body.get("zone"), event.body.get("geo")
    if isinstance(stop, dict) and "stopAreaId" in stop:
        entry["stopAreaId"] = stop["stopAreaId"]
    if isinstance(zone, dict) and "zoneId" in zone:
        entry["zoneId"] = zone["zoneId"]
    if isinstance(geo, dict) and "lat" in geo and "long" in geo:
        entry["geo"] = {"lat": geo["lat"], "long": geo["long"]}
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


# A use dated further ahead than this is stored as an event but not fed to other devices: its
# device's clock was wrong, and the feed's horizon (counted from each use's time) would keep it
# in every device's passback and fraud data for as long as its date is ahead.
USE_FUTURE_TOLERANCE = timedelta(minutes=5)


def _with_uses(items: list[events.Normalised], kind: str, device: str) -> list[NewEvent]:
    """The events to store, each accepted validation with its uses-feed entry (none for one
    dated past :data:`USE_FUTURE_TOLERANCE` from now)."""
    out = []
    latest = _now() + USE_FUTURE_TOLERANCE
    for item in items:
        if kind == "validation" and item.event.event_result == 0 and item.event.event_time <= latest:
            item.event.use = use_entry(item.event, device)
        out.append(item.event)
    return out


def _count(ctx: Any, kind: str, stored: list[tuple[int, bool]]) -> None:
    duplicates = sum(1 for _, dup in stored if dup)
    ctx.metrics.count_events(kind, len(stored) - duplicates, duplicates)
    if duplicates < len(stored):
        ctx.feeds["uses"].poke()


def _batch(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal = principal_of(request)
        data = await read_json(request)
        if isinstance(data, list) and len(data) > ctx.config.max_batch_events:
            raise ApiError(413, f"batch of {len(data)} events exceeds {ctx.config.max_batch_events}",
                           code="batch_too_large",
                           details=[{"field": "(body)", "message": f"at most {ctx.config.max_batch_events}"}])
        parsed = events.parse_batch(data, kind)
        stored = await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind, _now(),
                               _with_uses(parsed, kind, principal.key))
        _count(ctx, kind, stored)
        return web.Response(status=200)  # BoB: the whole batch is stored (or refused), no body

    return handler


async def _online(request: web.Request, item: events.Normalised, kind: str, text: str) -> None:
    """Decide an event that came with its MTB and without a result (:mod:`.online`); the verdict
    goes into the stored event (eventResult, eventReason, and the MTB's mtbReference when the
    event had none)."""
    ctx = ctx_of(request)
    event, new = item.source, item.event
    try:
        scanned = mtb.decode(text)
    except mtb.MtbFormatError as exc:
        verdict = online.Verdict(1, f"unreadable MTB: {exc}")
    else:
        iid, signature = scanned.issuer.header.iid, mtb.b64url_encode(scanned.issuer.signature)
        ref = mtb_ref(int(iid), signature) if iid.isdigit() else None
        now = _now()
        denied = await ctx.run(ctx.store.denied, online.deny_candidates(scanned, event.ticketId), now)
        near = await ctx.run(ctx.store.nearest_placed_event, ref, event.time) if ref else None
        sighting = online.sighting_use(near.ticket_id, near.event_time, near.body["geo"]["lat"],
                                       near.body["geo"]["long"]) if near else None
        ring = ctx.keyring
        keys = KeyStore(issuer_keys=ring.metadata.keystore.issuer_keys, kdks=dict(ring.kdks))
        scan = online.scan_context(event, kind, principal_of(request).sub)
        verdict = online.decide(scanned, event.ticketId, scan, keys, denied, sighting)
        if new.mtb_ref is None and ref is not None:
            new.body["mtbReference"] = {"pid": int(iid), "issuerSignature": signature}
            new.mtb_ref = ref
    new.event_result = verdict.code
    new.body["eventResult"], new.body["eventReason"] = verdict.code, verdict.reason


def _single(kind: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ctx = ctx_of(request)
        principal = principal_of(request)
        ticket_id = request.match_info["ticketId"]
        item = events.parse_single(await read_json(request), kind, ticket_id)
        text = request.query.get("mtb")
        if text is not None and item.event.event_result is None:
            await _online(request, item, kind, text)
        [(event_id, duplicate)] = await ctx.run(ctx.store.ingest_events, principal.key, principal.pid, kind,
                                                _now(), _with_uses([item], kind, principal.key))
        _count(ctx, kind, [(event_id, duplicate)])
        stored = await ctx.run(ctx.store.get_event, event_id)
        assert stored is not None
        location = ctx.absolute_url(request, f"/ticket/{tickets.segment(stored.ticket_id)}/event/{event_id}")
        if duplicate:
            return json_response({"code": "duplicate_event", "message": "this localEventId was already stored",
                                  "eventId": str(event_id)}, status=303, headers={"Location": location})
        ticket = await ctx.run(ctx.store.get_ticket, ticket_id)
        ids = await ctx.run(ctx.store.event_ids, ticket_id, tickets.RECENT_EVENT_IDS) if ticket else None
        return json_response(tickets.event_result_json(stored, ticket, ids), status=201,
                             headers={"Location": location})

    return handler


MTB_PARAM = Param("mtb", "query", {"type": "string"},
                  "the MTB as read (base64url, zlib+base64url): with no eventResult, the server decides (online "
                  "validation)")

MALFORMED = "Malformed ticketEvent (JSON, a member's type or value, a time that is not ISO 8601); details name " \
            "[index].field"
STORED_EVENT = (Link("getTicketEvent", {"ticketId": "$response.body#/ticketEvent/ticketId",
                                         "eventId": "$response.body#/ticketEvent/eventId"}),)
for _kind, _role in (("validation", "val"), ("inspection", "ins")):
    _title = _kind.capitalize()
    _batch_model, _single_model = EVENT_MODELS[_kind]
    api.endpoint("POST", f"/{_kind}", op=f"post{_title}s", roles=_role, body=list[_batch_model],
                 body_description="at most max_batch_events (1000) events",
                 summary=f"Store a batch of {_kind} events (all or nothing; deduplicated by device and localEventId)",
                 description="BoB's report: 200 with no body when every event is stored (or was before); an "
                             "error stores none of them. Unknown members over 2 KB are dropped (and logged).",
                 replies={200: Reply(None, "Stored, all of them"), 400: MALFORMED,
                          413: "Batch too large"})(_batch(_kind))
    api.endpoint("POST", f"/{_kind}/{{ticketId}}", op=f"post{_title}", roles=_role, body=_single_model,
                 summary=f"Store one {_kind} event for a ticket; online {_kind} when the MTB is given",
                 description="Offline: the event carries its eventResult and is stored. Online: no eventResult and "
                             "the MTB in `mtb`; the server decides (ticketEventStatus is the result code) and "
                             "stores the event with its verdict. With neither, the event is stored and its result "
                             "stays unknown (no ticketEventStatus). Events about tickets of other participants are "
                             "stored too. The path names the ticket: ticketId may be left out of the body (if "
                             "present it must be the same).",
                 params=(Param("ticketId", "path", {"type": "string"}), MTB_PARAM),
                 replies={201: Reply(TicketEventResult, headers=("Location",), links=STORED_EVENT), 400: MALFORMED,
                          303: Reply(None, "localEventId seen before; Location names the stored event",
                                     headers=("Location",))})(_single(_kind))
