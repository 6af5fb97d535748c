"""The server's OpenAPI 3.1 documents, built from the endpoint declarations
(:mod:`server.endpoint`): paths, roles, parameters, and request and response schemas from the
pydantic models the handlers declare. A document cannot list a route the server lacks or miss
one it has (a test compares it with ``app.router``).

``GET {base}/openapi.json`` serves the document of the BoB APIs (auth, device, ticket).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from . import deviations
from .context import ctx_of
from .endpoint import ERROR_BODY, PUBLIC, Api, Endpoint, Reply
from .errors import ERRORS, Error
from .etags import IF_NONE_MATCH, NOT_MODIFIED, etag_matches, strong_etag

REF = "#/components/schemas/{model}"

HEADERS: dict[str, dict[str, Any]] = {
    "Location": {"schema": {"type": "string"}, "description": "the URL of what was created or found"},
    "ETag": {"schema": {"type": "string"}, "description": "strong ETag of the body"},
    "Expires": {"schema": {"type": "string"}, "description": "HTTP date after which it is no longer valid"},
    "X-Total-Count": {"schema": {"type": "integer"}, "description": "matches over all pages"},
    "Link": {"schema": {"type": "string"}, "description": 'rel="next" when there are more'},
    "Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"},
}

_TOKEN_ERRORS = (401, 403, 429)
_BODY_ERRORS = (400, 408, 415, 422)

api = Api("Meta")


class Components:
    """Collects the schemas of the models a document uses, under their class names."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def schema(self, model: Any) -> dict[str, Any]:
        """The schema for a body: a ``$ref`` for a pydantic model, a generated schema for a
        type such as ``list[Model]``, or the given dict (a raw JSON schema) as it is."""
        if isinstance(model, dict):
            return model
        if isinstance(model, str):
            return {"$ref": REF.format(model=model)}
        generated = TypeAdapter(model).json_schema(ref_template=REF)
        self.schemas.update(generated.pop("$defs", {}))
        if isinstance(model, type) and issubclass(model, BaseModel):
            self.schemas[model.__name__] = generated
            return {"$ref": REF.format(model=model.__name__)}
        return generated


def _reply(components: Components, reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    if reply.model is not None:
        out["content"] = {reply.content_type: {"schema": components.schema(reply.model)}}
    if reply.headers:
        out["headers"] = {name: HEADERS[name] for name in reply.headers}
    if reply.links:
        out["links"] = {link.operation_id: {"operationId": link.operation_id,
                                            **({"parameters": dict(link.parameters)} if link.parameters else {}),
                                            **({"requestBody": link.request_body} if link.request_body else {})}
                        for link in reply.links}
    return out


def _error(status: int, description: str | None = None) -> Reply:
    return Reply(ERROR_BODY, description or ERRORS[status][1],
                 headers=("Retry-After",) if status == 429 else ())


def operation(components: Components, ep: Endpoint, security: dict[str, list[dict[str, list[str]]]]) -> dict:
    op: dict[str, Any] = {"operationId": ep.operation_id, "summary": ep.summary}
    description = ep.description
    replies = dict(ep.replies)
    if ep.public:
        op["security"] = []
    elif ep.basic:
        op["security"] = security["basic"]
        replies.setdefault(429, _error(429))
    else:
        op["security"] = security["token"]
        op["x-bob-roles"] = list(ep.roles)
        description = f"{description} Roles: {', '.join(ep.roles)}.".strip()
        for status in _TOKEN_ERRORS:
            replies.setdefault(status, _error(status))
    description = f"{description} {deviations.for_operation(ep.operation_id)}".strip()
    if description:
        op["description"] = description
    declared = {p.name for p in ep.params if p.where == "path"}
    missing = [name for name in re.findall(r"{(\w+)}", ep.path) if name not in declared]
    if missing:
        raise ValueError(f"{ep.operation_id}: path parameters {missing} are not declared")
    if ep.params:
        op["parameters"] = [{"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                             "schema": dict(p.schema), **({"description": p.description} if p.description else {})}
                            for p in ep.params]
    if ep.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": components.schema(ep.body)}},
                             **({"description": ep.body_description} if ep.body_description else {})}
    if ep.body is not None:
        for status in _BODY_ERRORS:
            replies.setdefault(status, _error(status))
    replies.setdefault(400, _error(400))  # a parameter, or a request the HTTP layer cannot parse
    op["responses"] = {str(status): _reply(components, reply) for status, reply in sorted(replies.items())}
    return op


def build(title: str, description: str, base_path: str, apis: Iterable[Api],
          security_schemes: dict[str, Any], security: dict[str, list[dict[str, list[str]]]]) -> dict[str, Any]:
    components = Components()
    components.schema(Error)
    paths: dict[str, dict[str, Any]] = {}
    for surface in apis:
        for ep in surface.endpoints:
            paths.setdefault(ep.path, {})[ep.method.lower()] = operation(components, ep, security)
    operations = {op["operationId"] for ops in paths.values() for op in ops.values()}
    for ops in paths.values():
        for op in ops.values():
            for response in op["responses"].values():
                unknown = {link["operationId"] for link in response.get("links", {}).values()} - operations
                if unknown:
                    raise ValueError(f"{op['operationId']}: links to unknown operations {unknown}")
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1", "description": description},
            "servers": [{"url": base_path or "/"}], "paths": paths,
            "components": {"schemas": dict(sorted(components.schemas.items())), "securitySchemes": security_schemes}}


BOB_SECURITY_SCHEMES = {
    "bobAuthToken": {"type": "apiKey", "in": "header", "name": "X-BoB-AuthToken",
                     "description": "JWT (ES256) from GET /auth/{entityId}; claims iss, sub, iat, exp, "
                                    "bobAuthZ (val, ins, tvm, pos, admin)"},
    "basicAuth": {"type": "http", "scheme": "basic"},
    "clientCertificate": {"type": "mutualTLS", "description": "a TLS client certificate issued by the server's "
                                                               "client CA (serve --tls-client-ca)"}}
BOB_SECURITY = {"token": [{"bobAuthToken": []}], "basic": [{"clientCertificate": []}, {"basicAuth": []}]}


DOCUMENT_PARAMS = (IF_NONE_MATCH,)
DOCUMENT_REPLIES = {200: Reply({"type": "object"}, headers=("ETag",)), 304: NOT_MODIFIED}


def document_response(request: web.Request, cache: dict[str, Any], key: str,
                      make: Callable[[], dict[str, Any]]) -> web.Response:
    """A public document, serialised once into ``cache[key]`` with its strong ETag: anyone may
    fetch it without a token or a limit, and 100 KB of JSON made afresh for each would cost every
    anonymous fetch milliseconds of the event loop that the devices share."""
    if key not in cache:
        body = json.dumps(make(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        cache[key] = (body, strong_etag(body))
    body, etag = cache[key]
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", charset="utf-8", headers=headers)


@api.endpoint("GET", "/openapi.json", op="getOpenApi", roles=PUBLIC, summary="This document",
              params=DOCUMENT_PARAMS, replies=DOCUMENT_REPLIES)
async def get_openapi(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return document_response(request, ctx.cache, "openapi", lambda: build(
        "Bundled BoB ticket server",
        "BoB Ticket API v1, the validation/inspection device feeds and event ingest, with the JobTicket B2B "
        "conventions (rate limit per credential, sortField/sortOrder allow-lists, pages of at most 100, "
        "JSON error bodies).\n\nWhere this server deliberately differs from the BoB Ticket API v1 seed:\n\n"
        + deviations.markdown_table(), ctx.config.base_path, ctx.apis, BOB_SECURITY_SCHEMES, BOB_SECURITY))
