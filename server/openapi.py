"""The server's own OpenAPI 3.1 document, served at ``{base}/openapi.json``.

Built from the route table (:data:`server.app.ROUTES`), the roles on each handler and the
pydantic request models, so it cannot list a route the server lacks or miss one it has
(a test compares it with ``app.router``). Response schemas are written out here, after the
BoB Ticket API v1 definitions.
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import models
from .auth import BASIC, PUBLIC, roles_of
from .store import EVENT_SORT_FIELDS, TICKET_SORT_FIELDS

def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "Successful operation") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _array(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


FARE = {"type": "object", "required": ["amount", "currency", "vatAmount", "vatPercent"], "properties": {
    "amount": {"type": "number", "description": "fare excluding VAT"}, "currency": {"type": "string"},
    "vatAmount": {"type": "number"}, "vatPercent": {"type": "number"}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "description": "stable machine-readable code"},
        "message": {"type": "string"},
        "details": _array({"type": "object", "properties": {
            "field": {"type": "string", "description": "the member or parameter, e.g. [3].time"},
            "index": {"type": "integer", "description": "position in a batch"},
            "message": {"type": "string"}, "type": {"type": "string"}}})}},
    "fareAmount": FARE,
    "jwtResponse": {"type": "object", "required": ["jwtCompact"], "properties": {"jwtCompact": {"type": "string"}}},
    "jwk": {"type": "object", "required": ["kty", "kid", "crv", "x", "y"], "properties": {
        k: {"type": "string"} for k in ("kty", "kid", "crv", "x", "y", "alg")}},
    "participant": {"type": "object", "required": ["pid", "mtbPublicKeys", "authtokenPublicKeys"], "properties": {
        "pid": {"type": "integer"}, "organisationName": {"type": "string"},
        "mtbPublicKeys": _array(_ref("jwk")), "authtokenPublicKeys": _array(_ref("jwk"))}},
    "kdk": {"type": "object", "required": ["kid", "key"], "properties": {
        "kid": {"type": "string"}, "key": {"type": "string", "description": "base64url, 32 bytes"}}},
    "deviceKey": {"type": "object", "required": ["did", "kid", "deviceKey"], "properties": {
        "did": {"type": "string"}, "kid": {"type": "string"},
        "deviceKey": {"type": "string", "description": "base64url HMAC key (HMAC-SHA-256(KDK, did)[0:16])"}}},
    "blacklistEntry": {"type": "object", "required": ["blacklistEntryId", "expire"], "properties": {
        "blacklistEntryId": {"type": "integer"}, "ticketId": {"type": "string"},
        "travellerId": {"type": "string"}, "tokenId": {"type": "string"},
        "expire": {"type": "string", "format": "date-time",
                   "description": "ISO 8601 extended UTC; an entry whose expire has passed lifts the ticket"}}},
    "ingestResult": {"type": "object", "required": ["eventId", "duplicate"], "properties": {
        "localEventId": {"type": ["string", "null"]}, "eventId": {"type": "string"},
        "duplicate": {"type": "boolean", "description": "true when (device, localEventId) was stored before"}}},
    "ticketMetadata": {"type": "object", "properties": {
        "relativeValidityStart": {"type": "string", "format": "date-time"},
        "ticketEventIds": _array({"type": "string"}), "travellerPhotoURL": {"type": "string"}}},
    "ticketEventResult": {"type": "object", "properties": {
        "ticketEvent": _ref("TicketEvent"), "ticketEventInspectMessage": {"type": "string"},
        "ticketEventPassengerMessage": {"type": "string"}, "ticketEventStatus": {"type": "integer"},
        "ticketMetadata": _ref("ticketMetadata")}},
    "manifestResponse": {"type": "object", "required": ["manifestMtbTemplate"], "properties": {
        "manifestMtbTemplate": {"type": "string", "description": "base64url of an ES256 compact JWS"},
        "manifestId": {"type": "string"}, "expires": {"type": "string", "format": "date-time"}}},
    "ticketBundle": {"type": "object", "required": ["ticketBundleId", "mtb"], "properties": {
        "ticketBundleId": {"type": "string"}, "manifestId": {"type": "string"},
        "settlementId": {"type": "string"}, "mtb": {"type": "string", "description": "zlib+base64url MTB"},
        "ticketIds": _array({"type": "string"})}},
    "ticketIssueResponse": {"type": "object", "required": ["settlementId", "ticketIds"], "properties": {
        "settlementId": {"type": "string"}, "ticketIds": _array({"type": "string"}),
        "ticketBundle": _ref("ticketBundle")}},
    "ticketActiveStatus": {"type": "boolean", "description": "true if the ticket is active and usable"},
    "recoverStatus": {"type": "object", "required": ["recovered"], "properties": {
        "recovered": {"type": "boolean"}, "recoveredAmount": _ref("fareAmount")}},
    "recoverableStatus": {"type": "object", "required": ["recoverable"], "properties": {
        "recoverable": {"type": "boolean"}, "recoverableAmount": _ref("fareAmount")}},
    "refundStatus": {"type": "object", "required": ["refunded"], "properties": {
        "refunded": {"type": "boolean"}, "refundedAmount": _ref("fareAmount")}},
    "refundableStatus": {"type": "object", "required": ["refundable"], "properties": {
        "refundable": {"type": "boolean"}, "refundableAmount": _ref("fareAmount")}},
    "revokeResponse": {"type": "object", "properties": {
        "ticketId": {"type": "string"}, "revoked": {"type": "boolean"}, "state": {"type": "string"}}},
    "ticket": {"type": "object", "required": ["ticketId", "issuedAt", "ticketPayload"], "properties": {
        "ticketId": {"type": "string"}, "issuedAt": {"type": "string", "format": "date-time"},
        "ticketPayload": {"type": "string", "description": "base64url JSON"},
        "mtb": {"type": "string", "description": "zlib+base64url MTB"},
        "ticketHolder": _ref("TicketHolder"), "activeStatus": {"type": "boolean"},
        "recoverStatus": _ref("recoverStatus"), "refundStatus": _ref("refundStatus"),
        "refundableStatus": _ref("refundableStatus"),
        "state": {"type": "string", "enum": ["active", "frozen", "recovered", "replaced", "refunded", "revoked"]},
        "pid": {"type": "integer"}, "productId": {"type": "string"},
        "validFrom": {"type": "string", "format": "date-time"}, "validUntil": {"type": "string", "format": "date-time"},
        "ticketBundleId": {"type": "string"}, "manifestId": {"type": "string"}, "settlementId": {"type": "string"},
        "requestId": {"type": "string"}, "bookingId": {"type": "string"},
        "recoveredFrom": {"type": "string"}, "replacedBy": {"type": "string"}}},
}

REQUEST_MODELS = (models.TicketEvent, models.ManifestRequest, models.ManifestCall, models.TicketBundleRequest,
                  models.DeviceKeyRequest, models.TicketHolder)


def _param(name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict:
    out = {"name": name, "in": where, "required": required or where == "path", "schema": schema}
    if description:
        out["description"] = description
    return out


PAGING = [
    _param("page", "query", {"type": "integer", "minimum": 1}, "1-based page (with pageSize)"),
    _param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "at most 100"),
    _param("offset", "query", {"type": "integer", "minimum": 0}, "alternative to page"),
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "alternative to pageSize"),
    _param("sortOrder", "query", {"type": "string", "enum": ["asc", "desc"]}),
]
PAGED_HEADERS = {"X-Total-Count": {"schema": {"type": "integer"}, "description": "matches over all pages"},
                 "Link": {"schema": {"type": "string"}, "description": 'rel="next" when there are more'}}
LOCATION = {"Location": {"schema": {"type": "string"}}}
TICKET_ERRORS = {"404": _err("Ticket not found (or not the caller's participant's)")}
STATE_ERRORS = {"404": _err("Ticket not found"), "409": _err("Not possible in the ticket's state")}


def _body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"required": True, "description": description, "content": {"application/json": {"schema": schema}}}


OPERATIONS: dict[str, dict[str, Any]] = {
    "getOpenApi": {"summary": "This document", "responses": {"200": _json({"type": "object"})}},
    "getAuthToken": {
        "summary": "Trade HTTP Basic credentials (username = entityId) for an X-BoB-AuthToken JWT (ES256)",
        "parameters": [_param("entityId", "path", {"type": "string"})],
        "responses": {"200": _json(_ref("jwtResponse")), "401": _err("Missing or invalid credentials")}},
    "getParticipantMetadata": {
        "summary": "Participants with their MTB and auth-token public keys (JWK); strong ETag",
        "parameters": [_param("If-None-Match", "header", {"type": "string"})],
        "responses": {"200": {**_json(_array(_ref("participant"))),
                              "headers": {"ETag": {"schema": {"type": "string"}}}},
                      "304": {"description": "Not modified (If-None-Match matched the ETag)"}}},
    "getStops": {
        "summary": "The operator's GTFS stops.txt (stop areas with zone_id); strong ETag",
        "parameters": [_param("If-None-Match", "header", {"type": "string"})],
        "responses": {"200": {"description": "GTFS stops.txt", "content": {"text/csv": {"schema": {"type": "string"}}},
                              "headers": {"ETag": {"schema": {"type": "string"}}}},
                      "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                      "404": _err("This deployment publishes no stops")}},
    "getDeviceKdk": {"summary": "Key-derivation keys for device signatures",
                     "responses": {"200": _json(_array(_ref("kdk")))}},
    "postDeviceKey": {"summary": "A wallet device's HS256 key, derived from the current KDK",
                      "requestBody": _body(_ref("DeviceKeyRequest")),
                      "responses": {"200": _json(_ref("deviceKey"))}},
    "getBlacklist": {
        "summary": "Deny-list entries with id > blacklistEntryId, oldest first",
        "parameters": [_param("blacklistEntryId", "query", {"type": "integer", "minimum": 0, "default": 0}),
                       _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000,
                                                 "default": 1000})],
        "responses": {"200": _json(_array(_ref("blacklistEntry")))}},
    "postValidations": {
        "summary": "Store a batch of validation events (all or nothing; deduplicated by device and localEventId)",
        "requestBody": _body(_array(_ref("TicketEvent")), "at most max_batch_events (1000) events"),
        "responses": {"201": _json(_array(_ref("ingestResult")), "Stored; one result per event, in order"),
                      "413": _err("Batch too large")}},
    "postInspections": {
        "summary": "Store a batch of inspection events (all or nothing; deduplicated by device and localEventId)",
        "requestBody": _body(_array(_ref("TicketEvent")), "at most max_batch_events (1000) events"),
        "responses": {"201": _json(_array(_ref("ingestResult")), "Stored; one result per event, in order"),
                      "413": _err("Batch too large")}},
    "postValidation": {
        "summary": "Store one validation event for a ticket",
        "parameters": [_param("ticketId", "path", {"type": "string"})],
        "requestBody": _body(_ref("TicketEvent")),
        "responses": {"201": {**_json(_ref("ticketEventResult")), "headers": LOCATION},
                      "303": {"description": "localEventId seen before; Location names the stored event",
                              "headers": LOCATION}}},
    "postInspection": {
        "summary": "Store one inspection event for a ticket",
        "parameters": [_param("ticketId", "path", {"type": "string"})],
        "requestBody": _body(_ref("TicketEvent")),
        "responses": {"201": {**_json(_ref("ticketEventResult")), "headers": LOCATION},
                      "303": {"description": "localEventId seen before; Location names the stored event",
                              "headers": LOCATION}}},
    "postManifest": {
        "summary": "Sign a manifest (product, fare, validity, zones, modes) that POST /ticket accepts",
        "requestBody": _body(_ref("ManifestRequest")),
        "responses": {"201": _json(_ref("manifestResponse"))}},
    "issueTickets": {
        "summary": "Issue tickets from a manifest",
        "requestBody": _body(_ref("ManifestCall")),
        "responses": {"201": {**_json(_ref("ticketIssueResponse")), "headers": LOCATION},
                      "200": {**_json(_ref("ticketIssueResponse"), "Replay of an earlier requestId"),
                              "headers": LOCATION},
                      "400": _err("Manifest invalid, expired, badly signed or from an unknown participant"),
                      "409": _err("Manifest already used, requestId reused, or recoverTicketId not recovered")}},
    "listTickets": {
        "summary": "Tickets of a traveller",
        "parameters": [_param("travellerId", "query", {"type": "string"}, required=True),
                       _param("active", "query", {"type": "boolean"}),
                       _param("pid", "query", {"type": "integer"}),
                       _param("refundable", "query", {"type": "boolean"}),
                       _param("refunded", "query", {"type": "boolean"}),
                       _param("requestId", "query", {"type": "string"}),
                       _param("sortField", "query", {"type": "string", "enum": list(TICKET_SORT_FIELDS),
                                                     "default": "issuedAt"}), *PAGING],
        "responses": {"200": {**_json(_array(_ref("ticket"))), "headers": PAGED_HEADERS}}},
    "getTicket": {"summary": "A ticket", "responses": {"200": _json(_ref("ticket")), **TICKET_ERRORS}},
    "getTicketActiveStatus": {"summary": "Active status",
                              "responses": {"200": _json(_ref("ticketActiveStatus")), **TICKET_ERRORS}},
    "putTicketActiveStatus": {
        "summary": "Freeze (false) or thaw (true) a ticket",
        "requestBody": _body({"oneOf": [_ref("ticketActiveStatus"), {
            "type": "object", "required": ["activeStatus"], "properties": {"activeStatus": {"type": "boolean"}}}]}),
        "responses": {"200": _json(_ref("ticketActiveStatus")), **STATE_ERRORS}},
    "listTicketEvents": {
        "summary": "Events devices posted for the ticket",
        "parameters": [_param("sortField", "query", {"type": "string", "enum": list(EVENT_SORT_FIELDS),
                                                     "default": "eventId"}), *PAGING],
        "responses": {"200": {**_json(_array(_ref("ticketEventResult"))), "headers": PAGED_HEADERS},
                      **TICKET_ERRORS}},
    "getTicketEvent": {
        "summary": "One stored event (the server's eventId)",
        "parameters": [_param("eventId", "path", {"type": "string"})],
        "responses": {"200": _json(_ref("ticketEventResult")), "404": _err("Ticket and event combination not found")}},
    "getRecoverStatus": {"summary": "Recover status", "responses": {"200": _json(_ref("recoverStatus")),
                                                                    **TICKET_ERRORS}},
    "recoverTicket": {"summary": "Recover a ticket (its MTB is deny-listed; its value may be re-issued)",
                      "responses": {"200": _json(_ref("recoverStatus")), **STATE_ERRORS}},
    "getRecoverableStatus": {"summary": "Whether the ticket can be recovered, and for what amount",
                             "responses": {"200": _json(_ref("recoverableStatus")), **TICKET_ERRORS}},
    "getRefundStatus": {"summary": "Refund status", "responses": {"200": _json(_ref("refundStatus")),
                                                                  **TICKET_ERRORS}},
    "refundTicket": {"summary": "Refund a ticket", "responses": {"200": _json(_ref("refundStatus")), **STATE_ERRORS}},
    "getRefundableStatus": {"summary": "Whether the ticket can be refunded, and for what amount",
                            "responses": {"200": _json(_ref("refundableStatus")), **TICKET_ERRORS}},
    "revokeTicket": {"summary": "Revoke a ticket (deny-listed for good)",
                     "responses": {"200": _json(_ref("revokeResponse")), **STATE_ERRORS}},
    "createTicketBundle": {
        "summary": "A new bundle (and MTB) holding a subset of one bundle's tickets",
        "requestBody": _body(_ref("TicketBundleRequest")),
        "responses": {"201": {**_json(_ref("ticketBundle")), "headers": LOCATION},
                      "400": _err("The tickets come from different ticket bundles"),
                      "409": _err("A ticket is not active or frozen")}},
    "getTicketBundle": {
        "summary": "A ticket bundle",
        "parameters": [_param("ticketBundleId", "path", {"type": "string"})],
        "responses": {"200": _json(_ref("ticketBundle")), "404": _err("Ticket bundle not found")}},
}

_COMMON_AUTHED = {"401": _err("Missing, invalid or expired X-BoB-AuthToken"),
                  "403": _err("The token's role may not call this endpoint"),
                  "429": {**_err("Rate limit exceeded"), "headers": {"Retry-After": {"schema": {"type": "integer"}}}}}
_COMMON_BODY = {"400": _err("Malformed JSON or parameter"), "422": _err("A member has a wrong type or value")}


def _model_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def build(config: Any, routes: Any) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        spec = dict(OPERATIONS[route.operation_id])
        responses = dict(spec.pop("responses"))
        roles = roles_of(route.handler)
        operation: dict[str, Any] = {"operationId": route.operation_id, **spec}
        declared = {p["name"] for p in spec.get("parameters", []) if p["in"] == "path"}
        missing = [name for name in re.findall(r"{(\w+)}", route.path) if name not in declared]
        if missing:
            operation["parameters"] = [*(_param(n, "path", {"type": "string"}) for n in missing),
                                       *spec.get("parameters", [])]
        if roles[0] == PUBLIC:
            operation["security"] = []
        elif roles[0] == BASIC:
            operation["security"] = [{"basicAuth": []}]
            responses.setdefault("429", _COMMON_AUTHED["429"])
        else:
            operation["security"] = [{"bobAuthToken": []}]
            operation["x-bob-roles"] = list(roles)
            operation["description"] = (spec.get("description", "") + f" Roles: {', '.join(roles)}.").strip()
            for code, value in _COMMON_AUTHED.items():
                responses.setdefault(code, value)
        if "requestBody" in spec or any(p["in"] == "query" for p in spec.get("parameters", [])):
            for code, value in _COMMON_BODY.items():
                responses.setdefault(code, value)
        operation["responses"] = dict(sorted(responses.items()))
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bundled BoB ticket server", "version": "1",
                 "description": "BoB Ticket API v1, the validation/inspection device feeds and event ingest, "
                                "with the JobTicket B2B conventions (rate limit per credential, "
                                "sortField/sortOrder allow-lists, pages of at most 100, JSON error bodies)."},
        "servers": [{"url": config.base_path or "/"}],
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **_model_schemas()},
            "securitySchemes": {
                "bobAuthToken": {"type": "apiKey", "in": "header", "name": "X-BoB-AuthToken",
                                 "description": "JWT (ES256) from GET /auth/{entityId}; claims iss, sub, iat, exp, "
                                                "bobAuthZ (val, ins, tvm, pos, admin)"},
                "basicAuth": {"type": "http", "scheme": "basic"}}},
    }


def document(app: web.Application) -> dict[str, Any]:
    from .app import ROUTES
    from .context import CTX

    ctx = app[CTX]
    if "openapi" not in ctx.cache:
        ctx.cache["openapi"] = build(ctx.config, ROUTES)
    return ctx.cache["openapi"]
