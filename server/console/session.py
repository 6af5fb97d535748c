"""Console sessions and CSRF tokens.

A session is a random token in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure`` when
the request came over TLS, path ``/console``); the database keeps only its SHA-256, with the
credential, the session's CSRF token and its expiry (config ``console.session_idle_seconds``
since the last page, ``console.session_max_seconds`` at most). Every server process reads the
same table, and removing the credential (or giving it a non-console role) ends its sessions.

CSRF: every form that changes something carries the session's CSRF token in a hidden field
(synchroniser token); the sign-in form, which has no session yet, carries a random token that
must equal a short-lived cookie of its own (double submit). A request whose ``Origin`` names
another host is refused as well.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web

from .page import CONSOLE_ROLES, Console, User
from .render import ConsoleError

COOKIE = "mtb_console"
LOGIN_COOKIE = "mtb_console_login"
LOGIN_COOKIE_SECONDS = 3600
TOUCH_AFTER = timedelta(seconds=60)  # write seen_at at most once a minute, not on every page


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_token(given: object, expected: str) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, *, path: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, path=path, max_age=max_age, httponly=True, samesite="Strict",
                        secure=request.secure)


def clear_cookie(response: web.StreamResponse, request: web.Request, name: str, *, path: str) -> None:
    response.del_cookie(name, path=path, httponly=True, samesite="Strict", secure=request.secure)


async def start_session(console: Console, request: web.Request, response: web.StreamResponse,
                        entity_id: str) -> None:
    """A new session for ``entity_id`` (always a new token: no fixation), its cookie on ``response``."""
    token = new_token()
    now = console.now()
    expires = now + timedelta(seconds=min(console.ctx.config.console.session_idle_seconds,
                                          console.ctx.config.console.session_max_seconds))
    await console.ctx.run(console.queries.create_session, token_hash(token), entity_id, new_token(), now, expires)
    set_cookie(response, request, COOKIE, token, path=console.prefix)


async def end_session(console: Console, request: web.Request, response: web.StreamResponse,
                      user: User | None) -> None:
    if user is not None:
        await console.ctx.run(console.queries.end_session, user.token_hash)
    clear_cookie(response, request, COOKIE, path=console.prefix)


async def current_user(console: Console, request: web.Request) -> User | None:
    """The signed-in operator, or None (no cookie, unknown or expired session, credential gone
    or no longer a console role). Extends the idle expiry, at most once a minute."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None
    digest = token_hash(token)
    now = console.now()
    session = await console.ctx.run(console.queries.session, digest, now)
    if session is None or session.role not in CONSOLE_ROLES:
        return None
    if now - session.seen_at >= TOUCH_AFTER:
        settings = console.ctx.config.console
        expires = min(session.created_at + timedelta(seconds=settings.session_max_seconds),
                      now + timedelta(seconds=settings.session_idle_seconds))
        await console.ctx.run(console.queries.touch_session, digest, now, expires)
    return User(session.entity_id, session.role, session.csrf, digest)


def check_origin(request: web.Request) -> None:
    """A browser names the page a form came from in ``Origin``; another host's is refused."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.host:
        raise ConsoleError(403, "This form was sent from another site; it was refused.")


async def check_csrf(request: web.Request, expected: str | None) -> None:
    """The form's ``csrf`` field must equal ``expected`` (the session's token, or None: the
    sign-in form's cookie)."""
    form = await request.post()
    if expected is None:
        expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not same_token(form.get("csrf"), expected):
        raise ConsoleError(403, "The form's security token (CSRF) was missing or wrong, so nothing was done. "
                                "Reload the page and try again.")


def login_token(request: web.Request) -> str:
    """The token for a sign-in form: the browser's current one (several open tabs keep
    working) or a new one; :func:`remember_login_token` sets it as the sign-in cookie."""
    token = request.cookies.get(LOGIN_COOKIE)
    return token if token and len(token) <= 200 else new_token()


def remember_login_token(response: web.StreamResponse, request: web.Request, token: str, prefix: str) -> None:
    set_cookie(response, request, LOGIN_COOKIE, token, path=prefix + "/login", max_age=LOGIN_COOKIE_SECONDS)
