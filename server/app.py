"""The aiohttp application: the route table, the middlewares, start-up and shut-down.

``make_app(config, store, keyring)`` gives a ``web.Application`` whose routes live under
``config.base_path`` (default ``/api/v1``). :data:`ROUTES` is the one list of what the server
answers; the OpenAPI document (:mod:`server.openapi`) is built from it.

Middlewares, outermost first: errors (every failure becomes a JSON body) -> auth (token,
credential still valid, rate limit, role).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import handlers as h
from .auth import auth_middleware
from .config import ServerConfig, load_config
from .context import CTX, Context
from .errors import error_middleware
from .keyring import KeyRing
from .ratelimit import RateLimiter
from .store import Store, StoreRunner, open_store


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to the base path
    handler: Callable
    operation_id: str


ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", h.get_openapi, "getOpenApi"),
    Route("GET", "/auth/{entityId}", h.get_auth, "getAuthToken"),
    Route("GET", "/participantMetadata", h.get_participant_metadata, "getParticipantMetadata"),
    Route("GET", "/device/kdk", h.get_device_kdk, "getDeviceKdk"),
    Route("GET", "/stops", h.get_stops, "getStops"),
    Route("POST", "/device/key", h.post_device_key, "postDeviceKey"),
    Route("GET", "/blacklist", h.get_blacklist, "getBlacklist"),
    Route("POST", "/validation", h.post_events("validation"), "postValidations"),
    Route("POST", "/validation/{ticketId}", h.post_event("validation"), "postValidation"),
    Route("POST", "/inspection", h.post_events("inspection"), "postInspections"),
    Route("POST", "/inspection/{ticketId}", h.post_event("inspection"), "postInspection"),
    Route("POST", "/manifest", h.post_manifest, "postManifest"),
    Route("POST", "/ticket", h.post_ticket, "issueTickets"),
    Route("GET", "/ticket", h.list_tickets, "listTickets"),
    Route("GET", "/ticket/{ticketId}", h.get_ticket, "getTicket"),
    Route("GET", "/ticket/{ticketId}/active", h.get_active, "getTicketActiveStatus"),
    Route("PUT", "/ticket/{ticketId}/active", h.put_active, "putTicketActiveStatus"),
    Route("GET", "/ticket/{ticketId}/event", h.list_ticket_events, "listTicketEvents"),
    Route("GET", "/ticket/{ticketId}/event/{eventId}", h.get_ticket_event, "getTicketEvent"),
    Route("GET", "/ticket/{ticketId}/recoverStatus", h.get_recover_status, "getRecoverStatus"),
    Route("PUT", "/ticket/{ticketId}/recoverStatus", h.put_recover_status, "recoverTicket"),
    Route("GET", "/ticket/{ticketId}/recoverableStatus", h.get_recoverable_status, "getRecoverableStatus"),
    Route("GET", "/ticket/{ticketId}/refundStatus", h.get_refund_status, "getRefundStatus"),
    Route("PUT", "/ticket/{ticketId}/refundStatus", h.put_refund_status, "refundTicket"),
    Route("GET", "/ticket/{ticketId}/refundableStatus", h.get_refundable_status, "getRefundableStatus"),
    Route("PUT", "/ticket/{ticketId}/revoke", h.put_revoke, "revokeTicket"),
    Route("POST", "/ticketbundle", h.post_ticketbundle, "createTicketBundle"),
    Route("GET", "/ticketbundle/{ticketBundleId}", h.get_ticketbundle, "getTicketBundle"),
)


def make_app(config: ServerConfig, store: Store, keyring: KeyRing | None = None) -> web.Application:
    """The application. ``keyring`` defaults to the keys in ``config.data_dir`` (a config read
    by :func:`server.config.load_config` knows its directory)."""
    if keyring is None:
        if not config.data_dir:
            raise ValueError("make_app needs a keyring or a config loaded from a data directory")
        keyring = KeyRing.load(config.data_dir, config)
    limiter = None
    if config.rate_limit.enabled:
        rl = config.rate_limit
        limiter = RateLimiter(rl.requests, rl.window_seconds, rl.block_seconds)
    ctx = Context(config=config, keyring=keyring, store=store, run=StoreRunner(store), limiter=limiter)
    app = web.Application(middlewares=[error_middleware, auth_middleware(ctx)],
                          client_max_size=config.max_body_bytes)
    app[CTX] = ctx
    for route in ROUTES:
        app.router.add_route(route.method, config.base_path + route.path, route.handler, name=route.operation_id)

    async def close_store(_app: web.Application) -> None:
        ctx.run.close()

    app.on_cleanup.append(close_store)
    return app


def app_from_data_dir(data_dir: str | Path, **overrides: object) -> web.Application:
    """The app for a data directory made by ``python -m server init``."""
    data_dir = Path(data_dir)
    config = load_config(data_dir)
    if overrides:
        config = ServerConfig.model_validate({**config.model_dump(), **overrides})
        config.data_dir = str(data_dir)
    return make_app(config, open_store(data_dir / config.database))


@dataclass
class RunningServer:
    """A server started with :func:`start`: ``url`` is the base URL (``http://127.0.0.1:PORT/api/v1``)."""

    runner: web.AppRunner
    host: str
    port: int
    base_path: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.base_path}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(data_dir: str | Path, host: str = "127.0.0.1", port: int = 0, **overrides: object) -> RunningServer:
    """Serve a data directory on the running event loop (port 0 = a free port); for end-to-end
    tests and the demo. ``await server.close()`` stops it."""
    app = app_from_data_dir(data_dir, **overrides)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if port == 0 else port  # type: ignore[union-attr]
    return RunningServer(runner, host, bound, app[CTX].config.base_path)
