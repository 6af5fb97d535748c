"""B2B fixtures: one real server on 127.0.0.1 per module and store backend (SQLite, and
PostgreSQL through the server tests' ``backend`` fixture; jobs off: tests run the roll-over and
the webhook sender themselves, at the moments they choose), a company per test (so tests do not
see each other's employees, and a second company gives the cross-company 404s), real API keys
over real HTTP Basic auth."""
from __future__ import annotations

import base64
import importlib.util
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.app import app_from_data_dir
from server.b2b import keys, webhooks
from server.b2b.calendar import local_date, zone
from server.b2b.records import PERMISSIONS, Product
from server.b2b.store import B2BStore
from server.b2b.subscription import Plan
from server.config import load_config
from server.store import open_store
from server.thread import ServerThread

from ..server.conftest import PASSWORD, backend, database_for, make_data_dir, postgres_server  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
TZ = "Europe/Berlin"
LOOPBACK = ["127.0.0.1"]  # the tests' webhook receivers (the sender refuses loopback unless allowed)
FARE = {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43, "vatPercent": 7.0}


def load_receiver() -> Any:
    """deploy/examples/webhook_receiver.py, imported as an integrator would run it."""
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "deploy/examples/webhook_receiver.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token(world: "World", entity: str = "admin") -> str:
    """A real X-BoB-AuthToken of the server's credential ``entity`` (the admin API wants admin)."""
    request = urllib.request.Request(f"{world.server.origin}/api/v1/auth/{entity}",
                                     headers={"Authorization": basic(entity, PASSWORD)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["jwtCompact"]


def today() -> date:
    return local_date(datetime.now(timezone.utc), zone(TZ))


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any
    raw: bytes

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.raw[:400]!r}>"


@dataclass
class Company:
    world: "World"
    id: int
    integration: int
    key_id: str = ""
    secret: str = ""
    extra: list[tuple[str, str]] = field(default_factory=list)

    def key(self, *permissions: str, enabled: bool = True) -> tuple[str, str]:
        key, secret = keys.new_key(self.id, list(permissions or PERMISSIONS), datetime.now(timezone.utc))
        self.world.store.add_api_key(key)
        if not enabled:
            self.world.store.set_api_key(key.key_id, enabled=False)
        return key.key_id, secret

    async def call(self, method: str, path: str, *, auth: tuple[str, str] | None = None, body: Any = None,
                   params: Any = None, raw: bytes | None = None) -> Reply:
        auth = auth or (self.key_id, self.secret)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Authorization": basic(*auth)}
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.world.session.request(method, self.world.base + path, data=data, params=params,
                                              headers=headers) as response:
            content = await response.read()
            try:
                parsed = json.loads(content) if content and response.content_type == "application/json" else None
            except ValueError:
                parsed = None
            return Reply(response.status, response.headers, parsed, content)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def sync(self, employees: list[dict[str, Any]], sync_id: str | None = None, **extra: Any) -> Reply:
        self.world.syncs += 1
        body = {"syncId": sync_id or f"sync-{self.world.syncs}", "employees": employees, **extra}
        return await self.call("POST", f"/hr-integrations/{self.integration}/sync", body=body)

    async def employees(self, **params: Any) -> list[dict[str, Any]]:
        reply = await self.get("/employees", params={"perPage": "100", **params})
        assert reply.status == 200, reply
        return reply.body["data"]["data"]

    async def employee(self, hr_id: str) -> dict[str, Any]:
        found = [e for e in await self.employees() if e["hrIntergartionLinks"][0]["hrId"] == hr_id]
        assert len(found) == 1, found
        return found[0]


@dataclass
class World:
    data_dir: Path
    server: ServerThread
    store: B2BStore
    session: aiohttp.ClientSession | None = None
    syncs: int = 0

    @property
    def base(self) -> str:
        return self.server.origin + "/b2b"

    def company(self, name: str = "ACME", *, plan: Plan | None = None, zones: tuple[str, ...] = ("A", "B"),
                modes: tuple[str, ...] = ("bus", "tram")) -> Company:
        now = datetime.now(timezone.utc)
        product = Product("job-ticket", zones, modes, FARE, "adult")
        company_id = self.store.add_company(name, product, plan or Plan(), now)
        integration = self.store.add_integration(company_id, "JobTicket+ API Integration", now)
        company = Company(self, company_id, integration)
        company.key_id, company.secret = company.key()
        return company


def start_world(path: Path, database: dict[str, str], **b2b: Any) -> World:
    """A server on a new data directory; ``database`` is ``database_for()`` (this run's backend)."""
    data = make_data_dir(path, **database, rate_limit={"requests": 100_000, "window_seconds": 60,
                                                       "block_seconds": 1, "roles": {}},
                         b2b={"jobs": False, "timezone": TZ, "webhook_allowed_networks": LOOPBACK, **b2b})
    server = ServerThread(app_from_data_dir(data)).start()
    config = load_config(data)
    return World(data, server, B2BStore(open_store(config.database_target(), pool_size=2).db))


@pytest.fixture(scope="module")
def b2b_world(tmp_path_factory: pytest.TempPathFactory, database_for: Any) -> Iterator[World]:
    world = start_world(tmp_path_factory.mktemp("b2b") / "data", database_for(),
                        rate_limit={"requests": 100_000, "window_seconds": 60, "block_seconds": 1})
    yield world
    world.server.stop()
    world.store.db.close()


@pytest.fixture
async def world(b2b_world: World) -> Any:
    async with aiohttp.ClientSession() as session:
        b2b_world.session = session
        yield b2b_world
        b2b_world.session = None


@pytest.fixture
async def acme(world: World) -> Company:
    return world.company("ACME")


def row(hr_id: str, first: str = "Anna", last: str = "Müller", **extra: Any) -> dict[str, Any]:
    """A roster row as an HR platform sends it (started a year ago unless told)."""
    body = {"firstName": first, "lastName": last, "email": f"{hr_id.lower()}@example.com", "profileImage": None,
            "dateOfBirth": "1990-04-15", "hrId": hr_id, "startDate": (today() - timedelta(days=365)).isoformat(),
            "terminationDate": None, "autoSyncEmployee": None, "absences": []}
    body.update(extra)
    return body


RECEIVER = load_receiver()


class Receiver:
    """An aiohttp receiver on 127.0.0.1 that verifies with the example's ``verify`` and fails
    the first ``fail`` requests (or those of ``fail_employee``) with 500."""

    def __init__(self, secret: str = "", fail: int = 0):
        self.secret = secret
        self.fail = fail
        self.fail_employee: int | None = None
        self.events: list[dict] = []
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            RECEIVER.verify(self.secret, request.headers.get(webhooks.HEADER), body)
        except RECEIVER.BadSignature:
            self.statuses.append(401)
            return web.Response(status=401)
        event = json.loads(body)
        payload = event["payload"]
        employee = payload.get("employeeId", payload["id"])
        if self.fail > 0 or employee == self.fail_employee:
            self.fail -= 1
            self.statuses.append(500)
            return web.Response(status=500)
        self.events.append(event)
        self.statuses.append(204)
        return web.Response(status=204)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self.runner.cleanup()


async def endpoint(world, company, receiver: Receiver, *events: str) -> int:
    url = await receiver.start()
    receiver.secret = webhooks.new_secret()
    return world.store.add_endpoint(company.id, url, list(events or webhooks.EVENT_TYPES), receiver.secret,
                                    datetime.now(timezone.utc))
