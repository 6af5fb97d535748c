"""The fleet: every device with its role, last contact (how long ago; marked when silent for
longer than ``device_silent_seconds``), outbox, list ages, alarms, software and clock skew, from
the state reports the devices send at each sync (``POST {base}/device/state``); a device's page
with its latest report, its recent events and its state over time."""
from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from .page import console_of, render
from .fleet_queries import DEVICE_SHOWS, DEVICE_SORTS
from .render import ConsoleError, Pager, choice, page_number
from .tickets import event_place

routes = web.RouteTableDef()


def _limits(request: web.Request) -> dict[str, int]:
    config = console_of(request).ctx.config
    return {"silent_after": config.device_silent_seconds, "skew_limit": config.clock_skew_seconds}


@routes.get("/fleet", name="console.fleet")
async def fleet(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    show = choice(request, "show", DEVICE_SHOWS, "all")
    sort = choice(request, "sort", tuple(DEVICE_SORTS), "last-contact")
    number, size = page_number(request), console.ctx.config.console.page_size
    now = console.now()
    silent_since = now - timedelta(seconds=console.ctx.config.device_silent_seconds)
    rows, total = await console.ctx.run(console.fleet.devices, show, sort, silent_since, (number - 1) * size, size)
    counts = await console.ctx.run(console.ctx.store.device_counts, silent_since)
    return render(request, "fleet.html", rows=rows, counts=counts, show=show, shows=DEVICE_SHOWS, sort=sort,
                  sorts=tuple(DEVICE_SORTS), pager=Pager(number, size, total, request.rel_url), now=now,
                  **_limits(request))


@routes.get("/devices/{device:.+}", name="console.device")  # another participant's sub may hold a "/"
async def device(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    name = request.match_info["device"]
    found = await console.ctx.run(console.fleet.device, name)
    size = console.ctx.config.console.page_size
    number, history_number = page_number(request), page_number(request, "history")
    events, total = await console.ctx.run(console.fleet.device_events, name, (number - 1) * size, size)
    if found is None and total == 0:
        raise ConsoleError(404, f"No device {name[:100]!r}: it has neither reported its state nor posted an event.")
    history, history_total = await console.ctx.run(console.fleet.device_history, name, (history_number - 1) * size,
                                                   size)
    return render(request, "device.html", name=name, device=found, events=events,
                  pager=Pager(number, size, total, request.rel_url), history=history,
                  history_pager=Pager(history_number, size, history_total, request.rel_url, "history"),
                  now=console.now(), place=event_place, **_limits(request))
