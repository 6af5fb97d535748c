"""The aiohttp application: the API surfaces it serves, the middlewares, start-up and shut-down.

``make_app(config, store, keyring)`` gives a ``web.Application`` serving :data:`SURFACES` under
``config.base_path`` (default ``/api/v1``). Each surface declares its endpoints (route, roles,
OpenAPI operation) in its own package; the OpenAPI document (:mod:`server.openapi`) is built
from the same declarations.

Middlewares, outermost first: metrics (requests by route and status, latency) -> errors (every
failure becomes a JSON body) -> auth (token, credential still valid, rate limit, role).
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from . import console, device_api, fleet, openapi, ops, product_api, ticket_api, token_api
from .auth import auth_middleware
from .b2b.api import B2B_KEY
from .b2b.app import install as install_b2b
from .auth.api import api as auth_api
from .auth.passwords import HashPool
from .auth.ratelimit import DatabaseLimiter, Limiter, RateLimiter, limits_shared
from .auth.tokens import TokenCache
from .clients import TrustedProxies
from .config import PRODUCTS_FILE, TICKLE_FILE, ServerConfig, load_config
from .context import CTX, Context
from .datafile import WatchedFile
from .device_api.feeds import Feeds
from .device_api.tickle import tickle_sets
from .endpoint import Api
from .errors import BODY_TIMEOUT, error_middleware
from .keyring import KeyRing
from .product_api.catalogue import Catalogue
from .serving import make_runner
from .store import Store, StoreRunner, open_store

SURFACES: tuple[Api, ...] = (openapi.api, auth_api, device_api.api, ticket_api.api, product_api.api,
                             token_api.api, fleet.api, ops.api)


def make_app(config: ServerConfig, store: Store, keyring: KeyRing | None = None) -> web.Application:
    """The application. ``keyring`` defaults to the keys in ``config.data_dir`` (a config read
    by :func:`server.config.load_config` knows its directory)."""
    if keyring is None:
        if not config.data_dir:
            raise ValueError("make_app needs a keyring or a config loaded from a data directory")
        keyring = KeyRing.load(config.data_dir, config)
    run = StoreRunner(store)
    limiter, login_limiter, b2b_limiter = make_limiters(config, store, run)
    endpoints = {ep.operation_id: ep for surface in SURFACES for ep in surface.endpoints}
    data_dir = Path(config.data_dir or ".")
    ctx = Context(config=config, keyring=keyring, store=store, run=run, limiter=limiter,
                  login_limiter=login_limiter, hasher=HashPool(config.password_hash),
                  proxies=TrustedProxies(config.trusted_proxies), metrics=ops.Metrics(),
                  feeds=Feeds(run, store, config.uses_horizon_seconds), tokens=TokenCache(),
                  apis=SURFACES, endpoints=endpoints,
                  catalogue=WatchedFile(data_dir / PRODUCTS_FILE, Catalogue.model_validate),
                  tickle=WatchedFile(data_dir / TICKLE_FILE, tickle_sets))
    app = web.Application(middlewares=[ops.metrics_middleware(ctx.metrics), error_middleware, auth_middleware(ctx)],
                          client_max_size=config.max_body_bytes)
    app[CTX] = ctx
    app[BODY_TIMEOUT] = config.connections.body_timeout_seconds
    for surface in SURFACES:
        surface.add_routes(app.router, config.base_path)
    install_b2b(app, ctx, b2b_limiter)  # the JobTicket B2B API, under its own base path (config b2b.base_path)
    if config.console.enabled:
        # web pages, not an API surface; the employer pages with the B2B side
        app.add_subapp(console.PREFIX, console.make_console(ctx, b2b=app.get(B2B_KEY)))

    async def start_feeds(_app: web.Application) -> None:
        await ctx.feeds.start()

    async def stop_feeds(_app: web.Application) -> None:
        await ctx.feeds.stop()

    app.on_startup.append(start_feeds)
    app.on_shutdown.append(stop_feeds)

    async def close_store(_app: web.Application) -> None:
        ctx.hasher.close()
        ctx.run.close()

    app.on_cleanup.append(close_store)
    return app


def make_limiters(config: ServerConfig, store: Store,
                  run: StoreRunner) -> tuple[Limiter | None, Limiter | None, Limiter | None]:
    """The request limiter, the login-failure limiter and the B2B API's per-key limiter (None
    when off): in the database when several processes share it (``shared_limits``; default: on
    PostgreSQL), else in this process's memory."""
    shared = limits_shared(config.shared_limits, store.db.dialect)

    def limiter(requests: int, window: float, block: float, roles: Any = None) -> Limiter:
        if shared:
            return DatabaseLimiter(run, store, requests, window, block, roles=roles)
        return RateLimiter(requests, window, block, roles=roles)

    rl, ll, kl = config.rate_limit, config.login_limit, config.b2b.rate_limit
    requests = limiter(rl.requests, rl.window_seconds, rl.block_seconds,
                       {role: rl.for_role(role) for role in rl.roles}) if rl.enabled else None
    logins = limiter(ll.failures, ll.window_seconds, ll.block_seconds) if ll.enabled else None
    b2b_keys = limiter(kl.requests, kl.window_seconds, kl.block_seconds) if kl.enabled else None
    return requests, logins, b2b_keys


def app_from_data_dir(data_dir: str | Path, **overrides: object) -> web.Application:
    """The app for a data directory made by ``python -m server init``."""
    data_dir = Path(data_dir)
    config = load_config(data_dir)
    if overrides:
        config = ServerConfig.model_validate({**config.model_dump(), **overrides})
        config.data_dir = str(data_dir)
    return make_app(config, open_store(config.database_target(), pool_size=config.database_pool_size))


@dataclass
class RunningServer:
    """A server started with :func:`start`: ``url`` is the base URL (``http://127.0.0.1:PORT/api/v1``,
    ``https://`` when started with an SSL context)."""

    runner: web.AppRunner
    host: str
    port: int
    base_path: str
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_path}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(data_dir: str | Path, host: str = "127.0.0.1", port: int = 0, *,
                ssl_context: ssl.SSLContext | None = None, **overrides: object) -> RunningServer:
    """Serve a data directory on the running event loop (port 0 = a free port; HTTPS with
    ``ssl_context``, see :mod:`server.tls`); for end-to-end tests and the demo.
    ``await server.close()`` stops it."""
    app = app_from_data_dir(data_dir, **overrides)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if port == 0 else port  # type: ignore[union-attr]
    return RunningServer(runner, host, bound, app[CTX].config.base_path, "https" if ssl_context else "http")
