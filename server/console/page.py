"""What every console page handler uses: the console's state on its application, who is
signed in, the access a handler declares, and rendering a template for them.

Access is declared on the handler (``@access(ADMIN)``; READ when not declared) and enforced
by the console's middleware (:mod:`server.console.app`) before the handler runs, as the API
surfaces declare their roles on the endpoint.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment

from ..context import Context
from .fleet_queries import FleetQueries
from .queries import ConsoleQueries
from .render import html

if TYPE_CHECKING:
    from ..b2b.service import B2B

PUBLIC, READ, ADMIN = "public", "read", "admin"  # no session; any console role; admin only
CONSOLE_ROLES = ("admin", "support")
ACCESS_ATTR = "console_access"


@dataclass(frozen=True)
class User:
    """The signed-in operator: their credential, its role now, and their session's CSRF token."""

    entity_id: str
    role: str
    csrf: str
    token_hash: str

    @property
    def can_change(self) -> bool:
        return self.role == "admin"


@dataclass
class Console:
    ctx: Context
    env: Environment
    queries: ConsoleQueries
    tz: ZoneInfo
    prefix: str  # where the console is mounted: "/console"
    fleet: FleetQueries
    sections: list[tuple[str, str]] = field(default_factory=list)  # nav: (route name, label)
    b2b: B2B | None = None  # the employer side, when the server runs it (b2b.enabled)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    def url(self, path: str) -> str:
        return self.prefix + path


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
USER: Any = web.RequestKey("console.user", User) if hasattr(web, "RequestKey") else "console.user"
LOGIN_NAME: Any = web.RequestKey("console.login_name", str) if hasattr(web, "RequestKey") else "console.login_name"


def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def user_of(request: web.Request) -> User:
    return request[USER]


def access(level: str) -> Callable[[Any], Any]:
    """Declare who may use the decorated handler (PUBLIC, READ or ADMIN)."""
    if level not in (PUBLIC, READ, ADMIN):
        raise ValueError(f"unknown access level {level!r}")

    def mark(handler: Any) -> Any:
        setattr(handler, ACCESS_ATTR, level)
        return handler

    return mark


def access_of(request: web.Request) -> str:
    return getattr(request.match_info.handler, ACCESS_ATTR, READ)


def render(request: web.Request, template: str, *, status: int = 200, headers: dict[str, str] | None = None,
           **values: Any) -> web.Response:
    """The template with what the layout needs: the user (None on the sign-in page), the
    sections and the current one, and ``link(route name, **path parts)``."""
    console = console_of(request)
    route = request.match_info.route.name if request.match_info.http_exception is None else None
    router = request.app.router

    def link(route: str, /, **parts: str) -> str:
        return str(router[route].url_for(**parts))  # the mount prefix included, parts percent-encoded

    page = console.env.get_template(template).render(
        user=request.get(USER), sections=console.sections, current=route, link=link, **values)
    return html(page, status, headers)
