"""A fault-injecting HTTP proxy on 127.0.0.1 in front of the real ticket server.

Tests script what the network does to the next requests: answer a status instead of the
server (503, 429 with Retry-After), reset the connection before or after the server handled
the request (an answer lost mid-batch), or delay. Everything else is forwarded unchanged.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web


@dataclass(frozen=True)
class Fault:
    kind: str  # "status", "reset-before", "reset-after", "delay"
    status: int = 503
    retry_after: float | None = None
    delay_s: float = 0.0
    path_contains: str = ""  # only requests whose path contains this


class FaultProxy:
    def __init__(self, upstream: str, clock: Callable[[], float] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: deque[Fault] = deque()
        self.log: list[tuple[str, str, int | str]] = []
        self.clock = clock  # e.g. a test's simulated clock: when each request arrived
        self.arrivals: list[tuple[float, str, str]] = []  # (clock(), method, path), every request
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def _next_fault(self, path: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.path_contains in path:
                self.faults.remove(fault)
                return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.clock is not None:
            self.arrivals.append((self.clock(), request.method, request.path))
        fault = self._next_fault(request.path)
        if fault is not None and fault.kind == "status":
            self.log.append((request.method, request.path, fault.status))
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response({"code": "injected", "message": "fault injected by the test"},
                                     status=fault.status, headers=headers)
        if fault is not None and fault.kind == "reset-before":
            self.log.append((request.method, request.path, "reset-before"))
            request.transport.close()  # type: ignore[union-attr]
            raise asyncio.CancelledError
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers, allow_redirects=False) as upstream:
            payload = await upstream.read()
            status, answer_headers = upstream.status, upstream.headers
        if fault is not None and fault.kind == "reset-after":  # the server did the work; the answer is lost
            self.log.append((request.method, request.path, "reset-after"))
            request.transport.close()  # type: ignore[union-attr]
            raise asyncio.CancelledError
        self.log.append((request.method, request.path, status))
        keep = {k: v for k, v in answer_headers.items()
                if k.lower() in ("content-type", "etag", "retry-after", "location", "www-authenticate")}
        return web.Response(status=status, body=payload, headers=keep)

    async def start(self) -> "FaultProxy":
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"
