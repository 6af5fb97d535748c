"""Signing in and out of the console.

The credentials are the server's own (``python -m server credentials add``), checked by the
same function as ``GET {base}/auth/{entityId}`` with the same login limits
(:func:`server.auth.check_login`): an ``admin``, or a read-only ``support`` credential.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from ..auth import check_login
from ..errors import ApiError
from .page import CONSOLE_ROLES, LOGIN_NAME, PUBLIC, READ, access, console_of, render, user_of
from .render import see_other
from .session import (LOGIN_COOKIE, clear_cookie, current_user, end_session, login_token, remember_login_token,
                      start_session)

log = logging.getLogger("server.console")
routes = web.RouteTableDef()
MAX_NAME, MAX_PASSWORD = 200, 1024
NOTICES = {"bye": "You are signed out.", "expired": "Your session ended; sign in again."}


def safe_next(value: str | None, prefix: str) -> str | None:
    """Where to go after signing in: only a path of this console (never another site)."""
    if not value or len(value) > 2000 or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix + "/") or value.startswith("//"):
        return None
    return value


def _login_page(request: web.Request, *, status: int = 200, error: str | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    console = console_of(request)
    token = login_token(request)
    notice = NOTICES.get(request.query.get("notice", ""))
    response = render(request, "login.html", status=status, headers=headers, csrf=token, error=error,
                      notice=notice, next=safe_next(request.query.get("next"), console.prefix) or "",
                      name=request.get(LOGIN_NAME, ""))
    remember_login_token(response, request, token, console.prefix)
    return response


@routes.get("/login", name="console.login")
@access(PUBLIC)
async def login_page(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    if await current_user(console, request) is not None:
        return see_other(console.url("/tickets"))
    return _login_page(request)


@routes.post("/login", name="console.login_post")
@access(PUBLIC)
async def login(request: web.Request) -> web.StreamResponse:
    """The middleware has checked the form's CSRF token against the sign-in cookie."""
    console = console_of(request)
    form = await request.post()
    name, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
    request[LOGIN_NAME] = name[:MAX_NAME]
    if not name or len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
        return _login_page(request, status=422, error=f"Enter a user name (at most {MAX_NAME} characters) "
                                                      "and its password.")
    try:
        cred = await check_login(console.ctx, request, name, password)
    except ApiError as err:
        if err.status in (429, 503):
            wait = err.headers.get("Retry-After", "60")
            log.warning("console: sign-in of %r from %s not checked (%s)", name, request.remote, err.status)
            why = "Too many failed sign-ins for this name from this address" if err.status == 429 else \
                "Too many sign-ins are being checked right now"
            return _login_page(request, status=err.status, headers={"Retry-After": wait},
                               error=f"{why}: try again in {wait} s.")
        log.warning("console: wrong password for %r from %s", name, request.remote)
        return _login_page(request, status=401, error="Wrong user name or password.")
    if cred.role not in CONSOLE_ROLES:
        log.warning("console: %r (role %s) may not use the console", name, cred.role)
        return _login_page(request, status=403, error=f"The credential {name!r} (role {cred.role}) cannot use the "
                                                      "console: it takes an admin or a support credential.")
    target = safe_next(str(form.get("next", "")), console.prefix) or console.url("/tickets")
    response = see_other(target)
    await start_session(console, request, response, cred.entity_id)
    clear_cookie(response, request, LOGIN_COOKIE, path=console.prefix + "/login")
    log.info("console: %s (%s) signed in from %s", cred.entity_id, cred.role, request.remote)
    return response


@routes.post("/logout", name="console.logout")
@access(READ)
async def logout(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    user = user_of(request)
    response = see_other(console.url("/login?notice=bye"))
    await end_session(console, request, response, user)
    log.info("console: %s signed out", user.entity_id)
    return response
