"""The rest of BoB's Validation API 3.0 for devices: TICKLE macro sets, the whitelist (tickets
bound to a token, for ID-based travel) and the fraud check (the velocity between a presented
MTB's nearest known sighting and the caller's time and place)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mtb import b64url_encode, unwrap_transport
from mtb.timeutil import format_basic
from mtb.travel import distance_m, velocity_kmh

from ..context import ctx_of, principal_of
from ..endpoint import Param, Reply
from ..errors import ApiError, from_validation, json_response, read_json
from ..models import GeoPosition, IsoTime, MtbReference
from ..params import DEVICES, feed_page, feed_params, param, path_int
from .events import mtb_ref
from .handlers import FEED_DESCRIPTION, api
from .tickle import TickleMacroSet


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- TICKLE macro sets ------------------------------------------------------------------------

def _tickle_sets(request: web.Request) -> dict[int, TickleMacroSet]:
    ctx = ctx_of(request)
    sets = ctx.tickle.get() if ctx.tickle is not None else None
    if not sets:
        raise ApiError(404, "no TICKLE macro sets in this deployment", code="tickle_not_found")
    return sets


@api.endpoint("GET", "/ticklemacros", op="getAllTickleMacrosets", roles=DEVICES,
              summary="Every TICKLE macro set the operator publishes, by ascending serial",
              description="From tickle-macros.json in the data directory. There is no expire mechanism: "
                          "validators fetch them periodically and keep them by serial.",
              replies={200: Reply(list[TickleMacroSet]), 404: "No TICKLE macro sets found"})
async def get_all_tickle(request: web.Request) -> web.Response:
    sets = _tickle_sets(request)
    return json_response([sets[serial].wire() for serial in sorted(sets)])


@api.endpoint("GET", "/ticklemacros/{serial}", op="getTickleMacroset", roles=DEVICES,
              summary="One TICKLE macro set by serial (its version)",
              params=(Param("serial", "path", {"type": "integer", "minimum": 0}),),
              replies={200: Reply(TickleMacroSet), 404: "TICKLE macro set not found"})
async def get_tickle(request: web.Request) -> web.Response:
    not_found = ApiError(404, f"no TICKLE macro set with serial {request.match_info['serial']!r}",
                         code="tickle_not_found")
    serial = path_int(request, "serial", not_found)
    macro_set = _tickle_sets(request).get(serial)
    if macro_set is None:
        raise not_found
    return json_response(macro_set.wire())


# --- whitelist --------------------------------------------------------------------------------

class WhitelistEntryOut(BaseModel):
    id: int = Field(description="ever increasing")
    kid: str = Field(description="RFC 7638 thumbprint of the token's public key")
    mtb: str = Field(description="base64url of the signed MTB container")
    val: str = Field(description="validity as an ISO 8601 interval, start/end (basic format)")
    priority: int | None = None


def whitelist_json(entry: Any) -> dict[str, Any]:
    _, container = unwrap_transport(entry.mtb)
    item = {"id": entry.entry_id, "kid": entry.token_id, "mtb": b64url_encode(container),
            "val": f"{format_basic(entry.valid_from)}/{format_basic(entry.valid_until)}"}
    if entry.priority is not None:
        item["priority"] = entry.priority
    return item


@api.endpoint("GET", "/whitelist", op="getWhitelist", roles=DEVICES,
              summary="Whitelist entries with id > whitelistEntryId, oldest first",
              description="One entry per ticket issued bound to a token (POST /ticket with tokenId or "
                          "tokenPublicKey): a validator that reads the token can validate the ticket without "
                          "its MTB being shown. A revoked ticket stays here; the deny list revokes it. "
                          "Validators and inspectors only: each entry is the ticket's whole signed MTB, a bearer "
                          "ticket to whoever shows it as a code. "
                          + FEED_DESCRIPTION,
              params=feed_params("whitelistEntryId"),
              replies={200: Reply(list[WhitelistEntryOut], headers=("X-Total-Count", "Link"))})
async def get_whitelist(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return await feed_page(request, "whitelistEntryId", lambda w: ctx.run(
        ctx.store.whitelist_page, w.after, offset=w.offset, limit=w.limit, sort_order=w.sort_order), whitelist_json)


# --- fraud check ------------------------------------------------------------------------------

class FraudcheckData(BaseModel):
    """BoB ``fraudcheckData``: which MTB, and where and when it is presented now. The server
    does not keep it (the API forbids retaining it)."""

    model_config = ConfigDict(extra="ignore")

    mtbReference: MtbReference
    geo: GeoPosition
    time: IsoTime | None = None


class FraudcheckResponse(BaseModel):
    velocity: float = Field(description="km/h from the nearest known sighting of the MTB (in time); 0 for at most "
                                        "1 km or at most 5 km/h, and when the server knows no sighting")


FRAUD_QUERY = ("time", "lat", "long", "pid", "issuerSignature")


async def _fraudcheck_data(request: web.Request) -> FraudcheckData:
    """The JSON body (what BoB clients send, on a GET), else the query parameters (for clients
    and proxies that drop a GET's body)."""
    if request.body_exists:
        data = await read_json(request)
    else:
        q = request.query
        data = {"mtbReference": {"pid": _number(q.get("pid"), int), "issuerSignature": q.get("issuerSignature")},
                "geo": {"lat": _number(q.get("lat"), float), "long": _number(q.get("long"), float)}}
        if "time" in q:
            data["time"] = q["time"]
    try:
        return FraudcheckData.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _number(text: str | None, kind: type) -> Any:
    try:
        return kind(text) if text is not None and len(text) < 40 else text
    except ValueError:
        return text  # validation names the parameter


@api.endpoint("GET", "/fraudcheck", op="fraudcheck", roles=DEVICES, body=FraudcheckData,
              body_description="fraudcheckData as a JSON body (BoB); or the query parameters time, lat, long, "
                               "pid and issuerSignature instead",
              params=tuple(param(name, "query", {"type": "string"}) for name in FRAUD_QUERY),
              summary="Velocity between the MTB's nearest known sighting and this one",
              description="The server looks up the event of the MTB (mtbReference: pid and issuerSignature) with a "
                          "position that is nearest in time to `time` (default: now) and answers the great-circle "
                          "speed between the two. A client gets one answer per event it is told about: asking "
                          "again about the same event is a 403, so a client cannot map a ticket's movements.",
              replies={200: Reply(FraudcheckResponse), 403: "This client was already answered for that event"})
async def fraudcheck(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = await _fraudcheck_data(request)
    now = _now()
    at = query.time or now
    ref = mtb_ref(query.mtbReference.pid, query.mtbReference.issuerSignature)
    sighting = await ctx.run(ctx.store.nearest_placed_event, ref, at)
    if sighting is None:
        return json_response({"velocity": 0.0})
    if not await ctx.run(ctx.store.note_fraudcheck_answer, principal_of(request).key, sighting.event_id, now):
        raise ApiError(403, "this client was already answered about the MTB's last sighting", code="already_answered")
    geo = sighting.body["geo"]
    metres = distance_m(geo["lat"], geo["long"], query.geo.lat, query.geo.long)
    velocity = velocity_kmh(metres, (at - sighting.event_time).total_seconds())
    return json_response({"velocity": round(velocity, 1)})
