"""Serving the application over TCP, with what aiohttp leaves to the deployment:

* **Slow clients.** A request's headers must arrive within ``header_timeout_seconds`` of its
  first byte (of the connection opening, for the first request), else the connection is
  closed: a client that sends one header line every few seconds cannot hold a connection
  open for long. A body must arrive within ``body_timeout_seconds`` (408, in
  :func:`server.errors.read_json`); an idle keep-alive connection is closed after
  ``keepalive_timeout_seconds``.
* **Greedy clients.** One address may hold ``per_address`` connections and the server
  ``total`` (config ``connections``); a connection over either cap is closed at once, before
  anything is read. Trusted proxies (config ``trusted_proxies``) count only against ``total``.
  At start the process's open-file limit is raised towards ``total`` when it is lower.
* **Errors before the handlers.** A request aiohttp cannot parse (an invalid character in a
  header, a malformed request line) gets the same JSON error body as every other 400.

:func:`make_runner` gives an ``AppRunner`` with all of this; :func:`run` serves until SIGINT or
SIGTERM.
"""
from __future__ import annotations

import asyncio
import logging
import resource
import signal
from collections import Counter
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .clients import TrustedProxies
from .config import ConnectionLimitConfig
from .context import CTX
from .errors import ApiError, error_response

log = logging.getLogger("server.connections")
HEAD_END = b"\r\n\r\n"


class ConnectionGuard:
    """Counts open connections per peer address; only the event loop touches it."""

    def __init__(self, limits: ConnectionLimitConfig, proxies: TrustedProxies):
        self.limits = limits
        self.proxies = proxies
        self.by_address: Counter[str] = Counter()
        self.total = 0
        self.refused = 0
        self.timed_out = 0

    def admit(self, address: str) -> bool:
        if self.total >= self.limits.total or (self.by_address[address] >= self.limits.per_address
                                               and not self.proxies.trusts(address)):
            self.refused += 1
            if self.refused % 1000 == 1:
                log.warning("connection from %s refused (%d from it, %d in all; %d refused so far)", address,
                            self.by_address[address], self.total, self.refused)
            return False
        self.by_address[address] += 1
        self.total += 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class GuardedHandler(RequestHandler):
    """aiohttp's protocol for one connection, with the caps, the header deadline and JSON
    errors for what fails before the application sees a request."""

    def __init__(self, manager: web.Server, *, guard: ConnectionGuard, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address: str | None = None  # set once admitted
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._head_tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        if not self._guard.admit(address):
            transport.abort()
            return
        self._address = address
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is None:
            return  # refused: aiohttp never saw this connection
        self._disarm()
        self._guard.release(self._address)
        self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head and self._address is not None:
            if self._head_timer is None:
                self._arm()
            seen = self._head_tail + data
            if HEAD_END in seen:
                self._awaiting_head = False
                self._head_tail = b""
                self._disarm()
            else:
                self._head_tail = seen[-(len(HEAD_END) - 1):]
        super().data_received(data)

    async def finish_response(self, request: Any, resp: Any, start_time: float | None) -> Any:
        result = await super().finish_response(request, resp, start_time)
        self._awaiting_head = True  # the next request's deadline starts with its first byte
        self._head_tail = b""
        return result

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self._loop.call_later(self._guard.limits.header_timeout_seconds, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._awaiting_head and self.transport is not None:
            self._guard.timed_out += 1
            log.info("closed a connection from %s: request headers not complete within %.0f s", self._address,
                     self._guard.limits.header_timeout_seconds)
            self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp does: too late for another response
            raise ConnectionError("response already under way; cannot send an error")
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:  # a client's malformed request: worth a line, not a traceback
            log.info("malformed request from %s: %s", request.remote, message or status)
        if status >= 500:
            err = ApiError(status, "internal server error" if status == 500 else HTTPStatus(status).phrase)
        else:
            err = ApiError(status, f"malformed HTTP request: {message or HTTPStatus(status).phrase}"[:300],
                           details=[{"field": "(request)", "message": (message or "")[:200]}])
        response = error_response(err)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's connection factory, making :class:`GuardedHandler` protocols."""

    def __init__(self, plain: web.Server, guard: ConnectionGuard):
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation, loop=plain._loop, **plain._kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, guard=self.guard, **self._kwargs)


class GuardedRunner(web.AppRunner):
    def __init__(self, app: web.Application, **kwargs: Any):
        config = app[CTX].config
        kwargs.setdefault("keepalive_timeout", config.connections.keepalive_timeout_seconds)
        super().__init__(app, **kwargs)
        self.guard = ConnectionGuard(config.connections, TrustedProxies(config.trusted_proxies))

    async def _make_server(self) -> web.Server:
        return GuardedServer(await super()._make_server(), self.guard)


def make_runner(app: web.Application, **kwargs: Any) -> GuardedRunner:
    kwargs.setdefault("access_log", None)
    return GuardedRunner(app, **kwargs)


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def run(app: web.Application, host: str, port: int, *, access_log: logging.Logger | None = None,
        ssl_context: Any = None, reuse_port: bool = False) -> None:
    """Serve until SIGINT or SIGTERM, then close connections and the store. ``reuse_port``: one
    of several worker processes on the port (``serve --workers N``). A request whose client
    hung up is cancelled (a long-poll a device abandoned holds nothing)."""
    limits = app[CTX].config.connections
    fds = raise_open_file_limit(limits.total + 256)
    if fds < limits.total + 64:
        log.warning("open-file limit %d is close to connections.total %d: lower it or raise the limit", fds,
                    limits.total)

    async def serve() -> None:
        runner = make_runner(app, access_log=access_log, handler_cancellation=True)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
