"""Activity: validations per minute over the last hours, by result code (an SVG chart drawn
on the server), and the day's refusals by reason (the day in the operator's time zone)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from aiohttp import web

from .chart import stacked_minutes
from .page import console_of, render
from .render import choice

routes = web.RouteTableDef()
HOURS = ("1", "3", "6", "12", "24")


def day_bounds(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Today in the operator's zone, as UTC instants [start, end)."""
    local = now.astimezone(tz)
    start = datetime(local.year, local.month, local.day, tzinfo=tz)
    return start.astimezone(timezone.utc), (start + timedelta(days=1)).astimezone(timezone.utc)  # wall-clock day


@routes.get("/activity", name="console.activity")
async def activity(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    hours = int(choice(request, "hours", HOURS, "3"))
    now = console.now()
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=hours)
    counts = await console.ctx.run(console.queries.validations_by_minute, start, end)
    day_start, day_end = day_bounds(now, console.tz)
    refusals = await console.ctx.run(console.queries.refusals, day_start, day_end)
    return render(request, "activity.html", chart=stacked_minutes(counts, start, hours * 60), hours=hours,
                  hour_choices=HOURS, start=start, end=end, refusals=refusals, day_start=day_start)
