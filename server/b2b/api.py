"""The JobTicket B2B API surface: authentication by API key, the rate limit per key, and the
permission each endpoint needs, declared once with the endpoint (:func:`endpoint`).

An endpoint's declaration gives its route, its permissions and its OpenAPI operation; the
guard it wraps around the handler answers 401 (no, wrong or disabled key, or the company's API
access off), 429 (over the key's limit: ``Retry-After``, and the key blocked 5 minutes), then
403 naming the missing permission. A key sees only its own company: another company's ids are
404, exactly like ids that do not exist.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..auth import BASIC, parse_basic
from ..endpoint import Api, Param, Reply
from ..errors import ApiError, json_response
from ..params import q_int, q_sort
from . import keys
from .records import ApiKey, Company, Query
from .service import B2B

api = Api("JobTicket B2B API", "Employees, subscriptions, documents, HR sync and webhooks for employers")
B2B_KEY: web.AppKey[B2B] = web.AppKey("b2b", B2B)
CHALLENGE = {"WWW-Authenticate": 'Basic realm="jobticket-b2b"'}
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Caller:
    key: ApiKey
    company: Company
    base: str  # absolute URL of the API's base path, for HAL links


B2BHandler = Callable[[web.Request, B2B, Caller], Awaitable[web.StreamResponse]]


def b2b_of(request: web.Request) -> B2B:
    return request.app[B2B_KEY]


def _unauthorized(message: str, code: str = "invalid_credentials") -> ApiError:
    return ApiError(401, message, code=code, headers=CHALLENGE)


async def authenticate(b2b: B2B, request: web.Request) -> Caller:
    user, secret = parse_basic(request.headers.get("Authorization"))
    key = await b2b.run(b2b.store.get_api_key, user) if keys.is_key_id(user) else None
    if not keys.check_secret(key, secret) or key is None:
        raise _unauthorized("invalid API key or secret")
    if not key.enabled:
        raise _unauthorized("this API key is disabled", "key_disabled")
    company = await b2b.run(b2b.store.get_company, key.company_id)
    if company is None or not company.api_enabled:
        raise _unauthorized("API access is not enabled for this company", "api_access_disabled")
    base = (b2b.config.public_url or f"{request.scheme}://{request.host}") + b2b.config.base_path
    return Caller(key, company, base)


async def check_rate(b2b: B2B, key: ApiKey) -> None:
    if b2b.limiter is None:
        return
    wait = await b2b.limiter.hit(f"b2b:{key.key_id}")
    if wait is not None:
        raise ApiError(429, f"rate limit exceeded for this API key; retry after {wait} s",
                       headers={"Retry-After": str(wait)})


def endpoint(method: str, path: str, *, op: str, permissions: tuple[str, ...], summary: str,
             description: str = "", params: tuple[Param, ...] = (), body: Any = None,
             replies: dict[int, Reply | str] | None = None) -> Callable[[B2BHandler], B2BHandler]:
    """Declare a B2B endpoint that needs ``permissions`` (all of them)."""
    needs = f"Permissions: {', '.join(permissions)}." if permissions else "No authentication."
    declared: dict[int, Reply | str] = dict(replies or {})
    if permissions:
        declared.setdefault(401, "Missing, wrong or disabled API key, or the company's API access is off")
        declared.setdefault(403, "The key lacks a permission (the message names it)")
        declared.setdefault(429, Reply("Error", "Over 100 requests a minute: the key is blocked for 5 minutes",
                                       headers=("Retry-After",)))

    def register(handler: B2BHandler) -> B2BHandler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            b2b = b2b_of(request)
            caller = await authenticate(b2b, request) if permissions else None
            if caller is not None:
                await check_rate(b2b, caller.key)
                missing = [p for p in permissions if p not in caller.key.permissions]
                if missing:
                    raise ApiError(403, f"this API key lacks the permission {', '.join(missing)}",
                                   code="missing_permission",
                                   details=[{"field": "permissions", "message": f"missing {p}"} for p in missing])
            return await handler(request, b2b, caller)  # type: ignore[arg-type]

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        api.endpoint(method, path, op=op, roles=BASIC if permissions else "public", summary=summary,
                     description=f"{description} {needs}".strip(), body=body, replies=declared,
                     params=params)(guarded)
        return handler

    return register


# --- paging -----------------------------------------------------------------------------------

def paging_params(allowed: dict[str, str], default: str, default_order: str) -> tuple[Param, ...]:
    return (Param("page", "query", {"type": "integer", "minimum": 1, "default": 1}, "1-based page"),
            Param("perPage", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 10},
                  "items a page; over 100 is a 400"),
            Param("sortField", "query", {"type": "string", "enum": list(allowed), "default": default}),
            Param("sortOrder", "query", {"type": "string", "enum": ["asc", "desc"], "default": default_order}))


def page_query(request: web.Request, allowed: dict[str, str], default: str, default_order: str,
               **filters: Any) -> Query:
    per_page = q_int(request, "perPage", 10, 1, MAX_PER_PAGE) or 10
    page = q_int(request, "page", 1, 1, 10_000_000) or 1
    sort_field, sort_order = q_sort(request, allowed, default, default_order)
    return Query(sort_field, sort_order, (page - 1) * per_page, per_page, filters)


def one(data: Any) -> web.Response:
    return json_response({"data": data})


def many(items: list[Any], query: Query, total: int) -> web.Response:
    pages = (total + query.limit - 1) // query.limit
    return json_response({"data": {"data": items, "page": query.offset // query.limit + 1, "perPage": query.limit,
                                    "totalPages": pages, "total": total}})
