"""The server in a background thread with its own event loop, on 127.0.0.1 and a free port.

For tests and benchmarks that drive it over real HTTP from another loop (or from blocking
code), and for embedding it in another program.
"""
from __future__ import annotations

import asyncio
import ssl
import threading

from aiohttp import web

from .serving import GuardedRunner, make_runner

HOST = "127.0.0.1"


class ServerThread:
    def __init__(self, app: web.Application, *, backlog: int = 1024, ssl_context: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.backlog = backlog
        self.ssl_context = ssl_context
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="server")
        self._runner: GuardedRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
        self.loop.close()

    async def _start(self) -> None:
        self._runner = make_runner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0, backlog=self.backlog, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self, timeout_s: float = 20) -> "ServerThread":
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("server did not start")
        return self

    def stop(self, timeout_s: float = 20) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)

    @property
    def origin(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{HOST}:{self.port}"
