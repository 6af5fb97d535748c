"""The console application (mounted by :mod:`server.app` under ``/console``) and its one
middleware, which runs before every page:

1. a form from another site (``Origin``) is refused;
2. a PUBLIC handler (sign-in, the style sheet) runs as it is, a sign-in form after its CSRF
   check against the sign-in cookie;
3. otherwise the session cookie must name a live session of an admin or support credential
   (else: a page asks to sign in, any other request is a 401);
4. a request that changes something (any method but GET/HEAD) must carry the session's CSRF
   token, and an ADMIN handler an admin (support: 403);
5. every answer is a page (errors too: no JSON, no traceback) with the security headers below.
"""
from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from aiohttp import web
from yarl import URL

from ..b2b.service import B2B
from ..context import CTX, Context
from ..errors import ApiError
from . import activity, assets, deny_list, employers, fleet, login, tickets
from .fleet_queries import FleetQueries
from .page import ADMIN, CONSOLE, PUBLIC, USER, Console, access, access_of, console_of, render
from .queries import ConsoleQueries
from .render import ConsoleError, make_env, see_other
from .session import COOKIE, check_csrf, check_origin, current_user

log = logging.getLogger("server.console")
PREFIX = "/console"
SAFE_METHODS = ("GET", "HEAD")
SECTIONS = [("console.tickets", "Tickets"), ("console.deny_list", "Deny list"), ("console.fleet", "Fleet"),
            ("console.activity", "Activity")]
EMPLOYERS = ("console.employers", "Employers")  # with the B2B side
PAGES = (login, tickets, deny_list, fleet, activity, assets)  # each module's ``routes``; employers with B2B
SECURITY_HEADERS = {
    # Everything from this server; no inline script at all; forms only post here; never framed.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def make_console(ctx: Context, prefix: str = PREFIX, b2b: B2B | None = None) -> web.Application:
    """The console; with ``b2b`` (the server's employer side) its Employers pages too."""
    tz = ZoneInfo(ctx.config.console.timezone)
    app = web.Application(middlewares=[console_middleware])
    app[CTX] = ctx
    sections = [*SECTIONS, EMPLOYERS] if b2b is not None else list(SECTIONS)
    app[CONSOLE] = Console(ctx, make_env(tz), ConsoleQueries(ctx.store.db), tz, prefix, FleetQueries(ctx.store.db),
                           sections, b2b)
    app[assets.ASSETS] = assets.load_assets()
    for module in (*PAGES, *([employers] if b2b is not None else [])):
        app.add_routes(module.routes)
    app.router.add_get("/", home, name="console.home")
    return app


@access(PUBLIC)
async def home(request: web.Request) -> web.StreamResponse:
    return see_other(console_of(request).url("/tickets"))


@web.middleware
async def console_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    try:
        response = await _guarded(request, handler)
    except ConsoleError as exc:
        response = _error_page(request, exc.status, exc.message, exc.headers)
    except ApiError as err:  # a shared check (login limits, the state machine) refused
        response = _error_page(request, err.status, err.message,
                               {k: v for k, v in err.headers.items() if k == "Retry-After"})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error_page(request, exc.status, "There is no such page." if exc.status == 404 else exc.reason)
    except Exception:  # noqa: BLE001 - an operator gets a page, the log gets the traceback
        log.exception("console: unhandled error on %s %s", request.method, request.path)
        response = _error_page(request, 500, "Something went wrong on the server; it has been logged.")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"
    return response


async def _guarded(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    console = console_of(request)
    if request.match_info.http_exception is not None and request.path == console.prefix:
        return see_other(console.prefix + "/")
    changes = request.method not in SAFE_METHODS
    if changes:
        check_origin(request)
    level = access_of(request)
    if level == PUBLIC:
        if changes:
            await check_csrf(request, None)
        return await handler(request)
    user = await current_user(console, request)
    if user is None:
        if changes:
            raise ConsoleError(401, "You are not signed in (or your session ended); nothing was done.")
        query = {"next": str(request.rel_url), **({"notice": "expired"} if request.cookies.get(COOKIE) else {})}
        return see_other(str(URL(console.prefix + "/login").with_query(query)))
    request[USER] = user
    if changes:
        await check_csrf(request, user.csrf)
    if level == ADMIN and not user.can_change:
        raise ConsoleError(403, f"Your role ({user.role}) may look but not change anything; nothing was done.")
    return await handler(request)


def _error_page(request: web.Request, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    try:
        return render(request, "error.html", status=status, headers=headers, status_code=status, message=message)
    except Exception:  # noqa: BLE001 - the error page itself failed: still an answer, never a traceback
        log.exception("console: the error page failed")
        return web.Response(text=f"{status}: {message}", status=status, headers=headers)
