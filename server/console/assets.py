"""The console's own style sheet and icon, served by the server itself (devices and back
offices often have no internet: nothing comes from a CDN). Only the files shipped in
``static/`` are served, read once at start, with an ETag."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from .page import PUBLIC, access

routes = web.RouteTableDef()
TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".js": "text/javascript"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    found = {}
    for item in (resources.files("server.console") / "static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if suffix in TYPES:
            body = item.read_bytes()
            found[item.name] = Asset(body, TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:24] + '"')
    return found


ASSETS: web.AppKey[dict[str, Asset]] = web.AppKey("console.assets", dict)


@routes.get("/static/{name}", name="console.static")
@access(PUBLIC)
async def asset(request: web.Request) -> web.StreamResponse:
    found = request.app[ASSETS].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    headers = {"ETag": found.etag, "Cache-Control": "no-cache"}
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, content_type=found.content_type, headers=headers)
