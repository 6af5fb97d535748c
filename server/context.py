"""What every handler needs, kept on the application under one key."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .clients import TrustedProxies
from .config import ServerConfig
from .datafile import WatchedFile
from .errors import ApiError
from .endpoint import Api, Endpoint
from .keyring import KeyRing
from .store import Store, StoreRunner


@dataclass
class Context:
    config: ServerConfig
    keyring: KeyRing
    store: Store
    run: StoreRunner  # await ctx.run(ctx.store.method, *args): off the event loop
    limiter: Any  # a server.auth.ratelimit.Limiter of requests per credential, or None when off
    login_limiter: Any = None  # a Limiter of failed logins per (client, entity), or None when off
    hasher: Any = None  # server.auth.passwords.HashPool: every password hash of a login runs there
    proxies: TrustedProxies = field(default_factory=TrustedProxies)
    metrics: Any = None  # server.ops.Metrics
    feeds: Any = None  # server.device_api.feeds.Feeds: the deny list's and the uses feed's watches
    tokens: Any = None  # server.auth.tokens.TokenCache: verified tokens until they expire
    apis: tuple[Api, ...] = ()  # the surfaces served under config.base_path
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by operation id: what the middleware checks
    cache: dict[str, Any] = field(default_factory=dict)
    catalogue: WatchedFile[Any] | None = None  # products.json, a server.product_api.catalogue.Catalogue
    tickle: WatchedFile[Any] | None = None  # tickle-macros.json, the TICKLE macro sets

    def url(self, path: str) -> str:
        return f"{self.config.base_path}{path}"

    def absolute_url(self, request: web.Request, path: str) -> str:
        """An absolute URL for a ``Location`` header (clients such as ``requests`` cannot follow
        a relative one): under ``public_url`` when configured (a server behind a reverse proxy
        sees neither the scheme nor the host the client used), else the scheme and host of the
        request itself."""
        origin = self.config.public_url or f"{request.scheme}://{request.host}"
        return f"{origin}{self.url(path)}"


CTX: web.AppKey[Context] = web.AppKey("ctx", Context)
PRINCIPAL: Any = web.RequestKey("principal", object) if hasattr(web, "RequestKey") else "principal"


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]


def principal_of(request: web.Request) -> Any:
    return request[PRINCIPAL]


async def visible_record(request: web.Request, read: Any, key: str, what: str, code: str) -> Any:
    """The stored record that path parameter ``key`` names, read by ``read(id)``, when the caller
    may see it (:meth:`Principal.sees`); else a 404, the same for another participant's record
    as for none, so that ids cannot be probed."""
    record_id = request.match_info[key]
    record = await ctx_of(request).run(read, record_id)
    if not principal_of(request).sees(record):
        raise ApiError(404, f"{what} {record_id!r} not found", code=code)
    return record
