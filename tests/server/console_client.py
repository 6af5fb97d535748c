"""A plain HTTP client that uses the console as a browser would (cookies, forms with their
hidden CSRF field), for the console's tests over real HTTP on 127.0.0.1."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from .conftest import PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Page:
    status: int
    text: str
    headers: Any

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def csrf(self) -> str:
        found = CSRF.search(self.text)
        assert found, f"no CSRF field on the page: {self.text[:500]}"
        return html.unescape(found.group(1))

    def __repr__(self) -> str:
        return f"<Page {self.status} {self.location or self.text[:300]!r}>"


class ConsoleClient:
    def __init__(self, origin: str, session: aiohttp.ClientSession):
        self.origin = origin
        self.session = session

    async def request(self, method: str, path: str, *, data: Any = None, headers: dict[str, str] | None = None,
                      cookies: dict[str, str] | None = None) -> Page:
        async with self.session.request(method, self.origin + path, data=data, headers=headers, cookies=cookies,
                                        allow_redirects=False) as response:
            return Page(response.status, await response.text(), response.headers)

    async def get(self, path: str, **kw: Any) -> Page:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, data: dict[str, str], **kw: Any) -> Page:
        return await self.request("POST", path, data=data, **kw)

    async def sign_in(self, user: str = "admin", password: str = PASSWORD, **form: str) -> Page:
        login = await self.get("/console/login")
        assert login.status == 200, login
        return await self.post("/console/login", {"csrf": login.csrf(), "user": user, "password": password, **form})

    async def submit(self, page_path: str, action_path: str, form: dict[str, str]) -> Page:
        """Fill in a form of ``page_path`` (with that page's CSRF token) and send it."""
        page = await self.get(page_path)
        assert page.status == 200, page
        return await self.post(action_path, {"csrf": page.csrf(), **form})

    def session_cookie(self) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == "mtb_console":
                return cookie.value
        return None


def client_session() -> aiohttp.ClientSession:
    """Cookies for 127.0.0.1 too (aiohttp's default jar refuses cookies of IP addresses)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


TIME = re.compile(r'<time datetime="([^"]+)Z" tabindex="0" role="time" aria-label="([^"]+)">([^<]+)'
                  r'<span class="utc"> \(([^<]+) UTC\)</span></time>')


def assert_times_in_zone(text: str, zone: str) -> int:
    """Every time on the page is in ``zone`` (to the second or to the minute), focusable, with
    its UTC time in its text (shown on hover and focus) and in its accessible name; returns how
    many there are."""
    times = TIME.findall(text)
    assert len(times) == text.count("<time "), "a time not written by render.when"
    for iso, label, local_text, utc_text in times:
        utc = datetime.fromisoformat(iso).replace(tzinfo=timezone.utc)
        assert utc_text == utc.strftime("%Y-%m-%d %H:%M:%S")
        local = utc.astimezone(ZoneInfo(zone))
        shown = [local.strftime(f"%Y-%m-%d {clock} ") + (local.tzname() or "") for clock in ("%H:%M:%S", "%H:%M")]
        assert local_text in shown, (local_text, shown)  # to the second, or to the minute (the activity chart)
        assert label == f"{local_text} ({utc_text} UTC)"
    assert f"Times are shown in {zone}" in text
    return len(times)
