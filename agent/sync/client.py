"""HTTP to the ticket server: the X-BoB-AuthToken flow, the request budget, TLS, and what each
answer means (spec server-api.md, JobTicket conventions).

Basic credentials buy a token (``GET /auth/{entity}``); its life is judged by the local
monotonic time it arrived plus ``exp - iat``, so a device whose wall clock is hours out still
uses a token until shortly before it expires, and a 401 renews it once. Every request,
token fetches included, is counted against the :class:`~.pacing.RequestBudget`. Each
successful answer's ``Date`` is handed to ``on_server_time`` (the device compares its clock).
"""
from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import aiohttp
from multidict import CIMultiDict

from mtb import MtbFormatError, b64url_decode

from .errors import AuthFailed, RateLimited, Rejected, TlsRefused, Transient
from .pacing import Clock, RequestBudget, SystemClock, retry_after
from .tls import TlsSettings

log = logging.getLogger(__name__)

TRANSIENT_STATUS = {500, 502, 503, 504}
TOKEN_RENEW_MARGIN_S = 60.0
FALLBACK_TOKEN_LIFE_S = 120.0  # a token whose iat/exp cannot be read is renewed soon
TOKEN_HEADER = "X-BoB-AuthToken"
BUDGET_WINDOW_S = 60.0
# TLS 1.3: a server that wants a client certificate refuses its absence after the handshake, and
# the client only sees the connection dropped.
NO_CLIENT_CERT_HINT = " (if the server wants a client certificate, set client_cert and client_key)"

ServerTimeObserver = Callable[[datetime, datetime], Awaitable[None]]


def basic_auth(entity: str, password: str) -> str:
    """An HTTP Basic ``Authorization`` value (the JobTicket B2B convention)."""
    return "Basic " + base64.b64encode(f"{entity}:{password}".encode()).decode("ascii")


def token_life(token: str) -> float:
    """``exp - iat`` of a token, read without verifying (the server is who checks it)."""
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
        life = float(claims["exp"]) - float(claims["iat"])
    except (IndexError, KeyError, TypeError, ValueError, MtbFormatError):
        return FALLBACK_TOKEN_LIFE_S
    return life if math.isfinite(life) and life > 0 else FALLBACK_TOKEN_LIFE_S


def server_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime, or None."""
    try:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.astimezone(timezone.utc)


def _tls_failure(exc: BaseException) -> BaseException | None:
    """The TLS error behind a connection failure, if that is what it was."""
    seen: BaseException | None = exc
    for _ in range(5):  # bounded: a cause chain is short
        if seen is None:
            return None
        if isinstance(seen, (ssl.SSLError, aiohttp.ClientSSLError)):
            return seen
        seen = getattr(seen, "certificate_error", None) or getattr(seen, "os_error", None) or seen.__cause__
    return None


class ServerClient:
    """One device's authenticated HTTP link to the server (see the module's docstring)."""

    def __init__(self, base_url: str, entity: str, password: str, *, timeout_s: float = 10.0,
                 tls: TlsSettings | None = None, allow_insecure_http: bool = False, clock: Clock | None = None,
                 max_requests_per_minute: int = 60) -> None:
        scheme = base_url.split(":", 1)[0].lower()
        if scheme not in ("https", "http"):
            raise ValueError(f"server URL must be https:// (got {base_url!r})")
        if scheme == "http":
            if not allow_insecure_http:
                raise ValueError(f"server URL {base_url} is http://: credentials and events would cross the "
                                 "network in clear; use https:// (or allow_insecure_http = true on loopback)")
            log.warning("server URL %s is plain http (allow_insecure_http): no TLS on the link to the server",
                        base_url)
        self.base_url = base_url.rstrip("/")
        self.entity = entity
        self._password = password
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        tls = tls or TlsSettings()
        self._ssl: ssl.SSLContext | bool = tls.context() if scheme == "https" else True
        self._https_without_client_cert = scheme == "https" and tls.client_cert is None
        self.clock: Clock = clock or SystemClock()
        self.budget = RequestBudget(max_requests_per_minute, BUDGET_WINDOW_S, self.clock)
        self.on_server_time: ServerTimeObserver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_renew_at = 0.0  # on self.clock's monotonic scale
        self._token_lock = asyncio.Lock()
        self.online = False  # the last request got an answer (any status); False after a network or TLS failure

    def __repr__(self) -> str:  # never the password
        return f"ServerClient({self.base_url!r}, entity={self.entity!r})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def forget_token(self) -> None:
        self._token = None

    @property
    def has_token(self) -> bool:
        """A token in hand that is not due for renewal: a request now costs no token fetch."""
        return self._token is not None and self.clock.monotonic() < self._token_renew_at

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout,
                                                  connector=aiohttp.TCPConnector(ssl=self._ssl))
        return self._session

    async def _fetch_token(self) -> str:
        status, _, data = await self._send("GET", f"/auth/{self.entity}",
                                           headers={"Authorization": basic_auth(self.entity, self._password)})
        if status == 401:
            raise AuthFailed(401, f"GET /auth/{self.entity}: the server refuses this device's credentials")
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("jwtCompact"), str):
            raise AuthFailed(status, f"GET /auth/{self.entity} gave no token")
        life = token_life(data["jwtCompact"])
        self._token = data["jwtCompact"]
        self._token_renew_at = self.clock.monotonic() + life - min(TOKEN_RENEW_MARGIN_S, life / 10)
        return self._token

    async def _current_token(self) -> str:
        """The token, fetched once when several requests (a held long-poll, an upload) need a new one."""
        async with self._token_lock:
            if self._token is None or self.clock.monotonic() >= self._token_renew_at:
                return await self._fetch_token()
            return self._token

    async def call(self, method: str, path: str, *, json_text: str | None = None,
                   params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                   raw: bool = False, timeout_s: float | None = None, reserve: int = 0,
                   observe_date: bool = True) -> tuple[int, CIMultiDict[str], Any]:
        """One authenticated request (``json_text``: a body already encoded; ``raw``: the answer's
        bytes, not JSON; ``timeout_s``: this request's own deadline, e.g. a long-poll's hold plus
        a margin; ``reserve``: see :meth:`RequestBudget.acquire`; ``observe_date`` False: the
        answer's ``Date`` is not handed to ``on_server_time``, for an answer the engine's thread
        waits for, where that hand-over queues); a 401 renews the token once."""
        headers = dict(headers or {})
        if json_text is not None:
            headers["Content-Type"] = "application/json"
        for _ in range(2):
            token = await self._current_token()
            status, answer_headers, data = await self._send(method, path, data=json_text, params=params,
                                                            headers={**headers, TOKEN_HEADER: token}, raw=raw,
                                                            timeout_s=timeout_s, reserve=reserve,
                                                            observe_date=observe_date)
            if status != 401:
                return status, answer_headers, data
            log.info("%s %s: token refused (401), fetching a new one", method, path)
            self._token = None
        raise AuthFailed(401, f"{method} {path}: the server refused a fresh token")

    async def _send(self, method: str, path: str, *, data: str | None = None, params: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None, raw: bool = False, timeout_s: float | None = None,
                    reserve: int = 0, observe_date: bool = True) -> tuple[int, CIMultiDict[str], Any]:
        await self.budget.acquire(reserve)
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._http().request(method, self.base_url + path, data=data, params=params, timeout=timeout,
                                            headers=headers, allow_redirects=False) as response:
                body = await response.read()
                status, answer_headers = response.status, CIMultiDict(response.headers)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.online = False
            tls = _tls_failure(exc)
            if tls is not None:
                raise TlsRefused(f"{method} {path}: TLS refused: {tls}") from exc
            dropped = isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)) and not isinstance(
                exc, aiohttp.ClientConnectorError)  # connected, then dropped
            hint = NO_CLIENT_CERT_HINT if dropped and self._https_without_client_cert else ""
            raise Transient(f"{method} {path}: {type(exc).__name__}: {exc}{hint}") from exc
        self.online = True
        if status == 429:
            wait = retry_after(answer_headers.get("Retry-After"))
            self.budget.block(wait)
            raise RateLimited(wait)
        if status in TRANSIENT_STATUS:
            raise Transient(f"{method} {path}: HTTP {status}")
        if status == 403:
            raise AuthFailed(403, f"{method} {path}: this device's role may not call it: "
                                  f"{body.decode('utf-8', 'replace')}")
        if status >= 400 and status != 401:
            raise Rejected(status, body.decode("utf-8", "replace"))
        if status < 400 and observe_date:
            await self._observe_date(answer_headers.get("Date"))
        if raw or status == 401:
            return status, answer_headers, body
        try:
            parsed = json.loads(body) if body else None
        except ValueError as exc:
            raise Transient(f"{method} {path}: answer is not JSON") from exc
        return status, answer_headers, parsed

    async def _observe_date(self, header: str | None) -> None:
        server_time = server_date(header)
        if server_time is not None and self.on_server_time is not None:
            await self.on_server_time(server_time, self.clock.wall())
