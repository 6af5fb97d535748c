"""The deny list as the devices get it, newest first: what each entry names (ticket, traveller
or token), why and by whom it was added, when, until when it holds, and how many devices have
not fetched it yet (by their state reports: a device last fetched the deny list at its report's
time less the age it gives for it; see :class:`server.console.fleet_queries.DenyFetching`)."""
from __future__ import annotations

from bisect import bisect_left

from aiohttp import web

from ..store.core import ts
from .page import console_of, render
from .queries import DENY_KINDS, DENY_STATUSES
from .render import Pager, choice, page_number

routes = web.RouteTableDef()
KINDS = ("all", *DENY_KINDS)


@routes.get("/deny-list", name="console.deny_list")
async def deny_list(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    kind = choice(request, "kind", KINDS, "all")
    status = choice(request, "status", DENY_STATUSES, "all")
    number, size = page_number(request), console.ctx.config.console.page_size
    now = console.now()
    rows, total = await console.ctx.run(console.queries.deny_entries, None if kind == "all" else kind, status, now,
                                        (number - 1) * size, size)
    fetching = await console.ctx.run(console.fleet.deny_fetching)
    behind = await console.ctx.run(console.fleet.fetched_before, max(r.created_at for r in rows)) if rows else []
    missing = {r.entry_id: bisect_left(behind, ts(r.created_at)) for r in rows}  # devices without each entry
    return render(request, "deny_list.html", rows=rows, fetching=fetching, missing=missing,
                  pager=Pager(number, size, total, request.rel_url), kind=kind, kinds=KINDS, deny_status=status,
                  statuses=DENY_STATUSES, now=now)
