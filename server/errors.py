"""Errors as the client sees them: JSON bodies ``{"code", "message", "details"?}``.

Handlers raise :class:`ApiError` (or let pydantic raise ``ValidationError``); the middleware
below turns everything into a JSON body with a stable ``code``. Bad input is always a 4xx that
names the field; an unexpected exception is a 500 with an opaque body (the traceback goes to
the server log, never to the client).

Status codes follow the JobTicket B2B conventions: 400 malformed request, 401 credentials,
403 role/participant, 404 unknown resource, 409 conflict with the resource's state, 413 body or
batch too large, 422 business validation (field-level ``details``), 429 rate limit.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

log = logging.getLogger("server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY_TIMEOUT: web.AppKey[float] = web.AppKey("body_timeout", float)  # seconds, set by the app from its config


# The one table of error kinds: status -> the default stable ``code`` (a raise may name a
# more precise one, e.g. ``ticket_not_found``) and what it means to a client.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Malformed request: JSON, a parameter or a header"),
    401: ("unauthorized", "Missing, invalid or expired credentials or token"),
    403: ("forbidden", "Authenticated, but this role or participant may not do this"),
    404: ("not_found", "No such resource (or not visible to the caller)"),
    405: ("method_not_allowed", "The path does not take this method"),
    408: ("request_timeout", "The request body did not arrive in time"),
    409: ("conflict", "Not possible in the resource's current state"),
    413: ("payload_too_large", "Body or batch too large"),
    415: ("unsupported_media_type", "The body's Content-Type is not what the operation takes"),
    422: ("validation_failed", "A member has a wrong type or value (details name it)"),
    429: ("rate_limited", "Too many requests; wait Retry-After seconds"),
    500: ("internal_error", "Unexpected server error (logged; the body says nothing more)"),
    503: ("busy", "Too busy for this request now; retry after Retry-After seconds"),
}


class ApiError(Exception):
    """Any error answer: ``raise ApiError(404, "ticket 'x' not found", code="ticket_not_found")``."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ERRORS.get(status, ("http_error", ""))[0]
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def field_error(field: str, message: str, *, status: int = 422, code: str = "validation_failed") -> ApiError:
    """An error about one named field (query parameter or body member)."""
    return ApiError(status, f"{field}: {message}", code=code, details=[{"field": field, "message": message}])


FIELD_MAX = 200  # characters of a field path in an error: a member's name is the client's text


def _loc(loc: Iterable[Any], prefix: str) -> str:
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    if len(text) > FIELD_MAX:  # an unknown member named with a megabyte is not sent back (or kept) whole
        text = text[:FIELD_MAX] + "…"
    return text or "(body)"


def validation_details(exc: ValidationError, prefix: str = "") -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:50]:
        loc = tuple(err.get("loc", ()))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        item: dict[str, Any] = {"field": _loc(loc, prefix), "message": message,
                                "type": err.get("type", "invalid")}
        if loc and isinstance(loc[0], int):
            item["index"] = loc[0]
        details.append(item)
    return details


def from_validation(exc: ValidationError, prefix: str = "", *, status: int = 422,
                    code: str | None = None) -> ApiError:
    details = validation_details(exc, prefix)
    first = details[0] if details else {"field": "(body)", "message": "invalid"}
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ApiError(status, f"{first['field']}: {first['message']}{more}", code=code, details=details)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                        status=status, headers=headers, content_type="application/json")


def error_response(err: ApiError) -> web.Response:
    return json_response(err.body(), status=err.status, headers=err.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        _refuse_unstorable_url(request)
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except ValidationError as exc:
        return error_response(from_validation(exc))
    except RecursionError:
        return error_response(ApiError(400, "JSON nested too deeply", code="malformed_json",
                                       details=[{"field": "(body)", "message": "nesting too deep"}]))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        message = exc.reason if exc.status != 413 else "request body too large"
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(ApiError(exc.status, message, headers=headers))
    except Exception:  # noqa: BLE001 - the one place that turns the unexpected into a 500
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal server error"))


def _refuse_unstorable_url(request: web.Request) -> None:
    """A NUL in a path segment or a query parameter is a 400 naming it, on every store."""
    if "\x00" in request.path:
        refuse_unstorable_text(request.path, "(path)")
    for name, value in request.query.items():
        refuse_unstorable_text(name, name)
        refuse_unstorable_text(value, name)


def is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``); parameters
    such as ``charset`` are allowed."""
    return content_type == "application/json" or (content_type.startswith("application/")
                                                  and content_type.endswith("+json"))


async def read_json(request: web.Request, timeout: float | None = None) -> Any:
    """The request body as JSON: 415 when it is declared as anything else, 408 when it does not
    arrive within ``timeout`` seconds (default: the server's body timeout), 400 (naming the
    position) when it is not JSON."""
    if request.body_exists and not is_json(request.content_type):
        raise ApiError(415, f"the body must be application/json, not {request.content_type!r}",
                       code="unsupported_media_type",
                       details=[{"field": "Content-Type", "message": "must be application/json"}])
    try:
        async with asyncio.timeout(timeout or request.app.get(BODY_TIMEOUT, 30.0)):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body exceeds {request.client_max_size} bytes") from None
    except TimeoutError:
        raise ApiError(408, "the request body did not arrive in time", code="body_timeout") from None
    if not raw.strip():
        raise ApiError(400, "request body is empty; JSON expected", code="malformed_json",
                       details=[{"field": "(body)", "message": "empty body"}])
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, f"malformed JSON body{where}", code="malformed_json",
                       details=[{"field": "(body)", "message": str(exc)[:200]}]) from None
    if _UNSTORABLE_ESCAPE.search(raw):
        _refuse_unstorable(value)
    return value


# "\ud800" (a lone surrogate) and "\u0000" are valid JSON but not storable text: neither can be
# encoded as UTF-8 for every store (PostgreSQL text holds no NUL) and sent back the same.
_UNSTORABLE_ESCAPE = re.compile(rb"\\[uU](?:[dD][89a-fA-F]|0000)")


def _refuse_unstorable(value: Any) -> None:
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            refuse_unstorable_text(item, where or "(body)", status=400, code="malformed_json")
        elif isinstance(item, dict):
            for key, member in item.items():
                path = f"{where}.{key}" if where else str(key)
                refuse_unstorable_text(key, path, status=400, code="malformed_json")
                stack.append((path, member))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", member) for i, member in enumerate(item))


def refuse_unstorable_text(text: str, field: str, *, status: int = 400, code: str = "bad_parameter") -> None:
    """400 naming ``field`` when ``text`` holds a NUL or a lone surrogate (text no store keeps)."""
    field = field.encode("utf-8", "backslashreplace").decode("utf-8")  # the name itself may be the culprit
    if "\x00" in text:
        raise ApiError(status, f"{field} contains a NUL character", code=code,
                       details=[{"field": field, "message": "NUL (U+0000) is not allowed in text"}])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(status, f"{field} is not valid text", code=code,
                       details=[{"field": field, "message": "lone surrogate"}]) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class ErrorDetail(BaseModel):
    field: str = Field(description="the member or parameter, e.g. [3].time")
    message: str
    index: int | None = Field(None, description="position in a batch")
    type: str | None = None


class Error(BaseModel):
    """Every error answer's body."""

    code: str = Field(description="stable machine-readable code")
    message: str
    details: list[ErrorDetail] | None = None
