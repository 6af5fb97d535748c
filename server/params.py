"""Query parameters, pages and request bodies, read the same way on every surface: a bad
value is a 400 that names the parameter, never a 500 or a silent default."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .context import principal_of
from .endpoint import Param
from .errors import ApiError, field_error, json_response, read_json
from .store import SORT_ORDERS

MAX_PAGE = 100


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
    if value is None:
        return default
    # ASCII only: str.isdigit() also passes '²' (int() then raises: a 500) and '١' (Arabic-Indic 1)
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise field_error(name, "must be a non-negative integer", status=400, code="bad_parameter")
    number = int(value)
    if not lo <= number <= hi:
        raise field_error(name, f"must be between {lo} and {hi}", status=400, code="bad_parameter")
    return number


def path_int(request: web.Request, name: str, not_found: ApiError) -> int:
    """A numeric path id (a server-allocated id such as an eventId): ASCII digits only, else
    ``not_found`` (``'²'.isdigit()`` is true but ``int('²')`` raises; ``'١'`` is an Arabic-Indic 1)."""
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise not_found
    return int(raw)


def q_sort(request: web.Request, allowed: dict[str, str], default_field: str, default_order: str) -> tuple[str, str]:
    sort_field = request.query.get("sortField", default_field)
    sort_order = request.query.get("sortOrder", default_order).lower()
    if sort_field not in allowed:
        raise field_error("sortField", f"must be one of {', '.join(allowed)}", status=400, code="bad_parameter")
    if sort_order not in SORT_ORDERS:
        raise field_error("sortOrder", "must be asc or desc", status=400, code="bad_parameter")
    return sort_field, sort_order


def q_page(request: web.Request, max_size: int = MAX_PAGE) -> tuple[int, int]:
    """``page``/``pageSize`` (1-based) or ``offset``/``limit``; 100 a page unless asked, at most
    ``max_size`` (100 but for the device feeds)."""
    paged = "page" in request.query or "pageSize" in request.query
    if paged and ("offset" in request.query or "limit" in request.query):
        raise field_error("page", "use page/pageSize or offset/limit, not both", status=400, code="bad_parameter")
    if paged:
        size = q_int(request, "pageSize", MAX_PAGE, 1, max_size) or MAX_PAGE
        page = q_int(request, "page", 1, 1, 10_000_000) or 1
        return (page - 1) * size, size
    limit = q_int(request, "limit", MAX_PAGE, 1, max_size) or MAX_PAGE
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


def param(name: str, where: str, schema: dict[str, Any], description: str = "", required: bool = False) -> Param:
    return Param(name, where, schema, description, required)


def paging(max_size: int = MAX_PAGE, size_note: str = "at most 100") -> tuple[Param, ...]:
    """The paging and sort-order parameters every list takes (with ``sort_param`` for the field)."""
    return (
        param("page", "query", {"type": "integer", "minimum": 1, "maximum": 10_000_000}, "1-based page (with pageSize)"),
        param("pageSize", "query", {"type": "integer", "minimum": 1, "maximum": max_size, "default": MAX_PAGE},
              size_note),
        param("offset", "query", {"type": "integer", "minimum": 0, "maximum": 10 ** 12}, "alternative to page"),
        param("limit", "query", {"type": "integer", "minimum": 1, "maximum": max_size, "default": MAX_PAGE},
              f"alternative to pageSize; {size_note}"),
        param("sortOrder", "query", {"type": "string", "enum": list(SORT_ORDERS)}),
    )


PAGING = paging()


def sort_param(allowed: dict[str, str], default: str) -> Param:
    return param("sortField", "query", {"type": "string", "enum": list(allowed), "default": default})


# --- feeds: lists a device follows by id (the deny list, the whitelist, the revocation list) ---

FEED_MAX = 10_000  # a device may take this many entries a page; every other role 100
DEVICES = ("val", "ins")  # the device roles


@dataclass(frozen=True)
class FeedWindow:
    after: int  # only entries with a larger id
    offset: int
    limit: int
    sort_order: str


def feed_params(id_name: str) -> tuple[Param, ...]:
    """The parameters of a feed whose entries have ids ``id_name``."""
    return (param(id_name, "query", {"type": "integer", "minimum": 0, "default": 0, "maximum": 2 ** 62},
                  "only entries with a larger id"),
            sort_param({id_name: "id"}, id_name), *paging(FEED_MAX, f"at most 100, or {FEED_MAX} for val and ins"))


def feed_window(request: web.Request, id_name: str, *, device: bool) -> FeedWindow:
    after = q_int(request, id_name, 0, 0, 2 ** 62) or 0
    _, sort_order = q_sort(request, {id_name: "id"}, id_name, "asc")
    offset, limit = q_page(request, FEED_MAX if device else MAX_PAGE)
    return FeedWindow(after, offset, limit, sort_order)


async def feed_page(request: web.Request, id_name: str,
                    read: Callable[[FeedWindow], Awaitable[tuple[Sequence[Any], int]]],
                    item: Callable[[Any], dict[str, Any]]) -> web.Response:
    """One page of a feed: the caller's window (a device's pages may be larger), ``read`` gives
    the entries and the total, ``item`` their wire form; paging headers as every list has."""
    window = feed_window(request, id_name, device=principal_of(request).role in DEVICES)
    entries, total = await read(window)
    return json_response([item(e) for e in entries],
                         headers=page_headers(request, window.offset, window.limit, total))
