"""Server-rendered pages: Jinja2 templates shipped in the package, escaped by default.

Jinja2 directly rather than aiohttp-jinja2: the wrapper would add one decorator over
``get_template().render()`` and has had no release since 2023; Jinja2 itself (Pallets) is
maintained. Every time goes through :func:`when`: shown in the operator's time zone (config
``console.timezone``), with its UTC time for everyone who reads it: see :func:`when`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from yarl import URL

from .codes import STATES, result_colour, result_name

MAX_PAGE_NUMBER = 1_000_000


class ConsoleError(Exception):
    """An answer the operator reads as a page: ``raise ConsoleError(404, "No ticket 'x'.")``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def when(value: datetime | None, tz: ZoneInfo, *, seconds: bool = True) -> Markup:
    """A time in the operator's zone, with its UTC time for mouse, keyboard and screen reader alike.

    A ``title`` (a tooltip) reaches only a mouse. Here the UTC time is text of the element,
    visually hidden until the time is hovered or has the focus (``time .utc`` in console.css:
    then it shows in the flow, below, covering nothing, so WCAG 1.4.13 needs no script to
    dismiss it); ``tabindex`` lets the keyboard reach it (a tap on a phone too), and the
    ``aria-label`` says both when it has the focus: ARIA names a time only by its author
    (Chromium gives a bare ``<time>`` no name from its text), and axe-core accepts a label on a
    time only where the role is written out. Lists stay one line a time until a time is asked for.
    """
    if value is None:
        return Markup("<span>&mdash;</span>")
    utc = value.astimezone(timezone.utc)
    local = value.astimezone(tz)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + (local.tzname() or "")
    in_utc = utc.strftime("(%Y-%m-%d %H:%M:%S UTC)")
    return Markup('<time datetime="{}" tabindex="0" role="time" aria-label="{} {}">{}<span class="utc"> {}</span>'
                  "</time>").format(utc.strftime("%Y-%m-%dT%H:%M:%SZ"), shown, in_utc, shown, in_utc)


def clock(value: datetime, tz: ZoneInfo) -> str:
    """Hours and minutes in the operator's zone (chart axis labels)."""
    return value.astimezone(tz).strftime("%H:%M")


def duration(seconds: float | None) -> str:
    """``42 s``, ``7 min``, ``3 h 5 min``, ``2 d 4 h``: how long ago, how old."""
    if seconds is None:
        return "never"
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


def make_env(tz: ZoneInfo) -> Environment:
    env = Environment(loader=PackageLoader("server.console", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda value, seconds=True: when(value, tz, seconds=seconds)
    env.filters["clock"] = lambda value: clock(value, tz)
    env.filters["duration"] = duration
    env.globals.update(result_name=result_name, result_colour=result_colour, state_words=STATES,
                       timezone_name=tz.key, timedelta=timedelta)
    return env


@dataclass(frozen=True)
class Pager:
    """One page of a list: ``?page=N`` (from 1), ``size`` rows a page (config ``console.page_size``)."""

    number: int
    size: int
    total: int
    url: URL  # the page's own URL: the links keep its other parameters
    param: str = "page"  # a page with two lists pages the second with another parameter

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def last(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)

    def link(self, number: int) -> str:
        return str(self.url.update_query({self.param: number}))


def page_number(request: web.Request, param: str = "page") -> int:
    """``?page=``: a whole number from 1 (absent: 1); anything else is a 400 that says so."""
    value = request.query.get(param, "1") or "1"
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value[:8]) <= MAX_PAGE_NUMBER:
        raise ConsoleError(400, f"{param} must be a whole number from 1 to {MAX_PAGE_NUMBER}, not {value[:40]!r}.")
    return int(value)


def choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    """A query parameter that must be one of ``allowed``; 400 naming it otherwise."""
    value = request.query.get(name, default) or default
    if value not in allowed:
        raise ConsoleError(400, f"{name} must be one of {', '.join(allowed)}.")
    return value


def html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=headers)


def see_other(location: str) -> web.Response:
    """303: after a form, the browser fetches the page again with GET."""
    return web.Response(status=303, headers={"Location": location})
