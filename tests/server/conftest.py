"""Fixtures for the ticket server tests: a real data directory (made by the init function),
a real server on 127.0.0.1 (its own event loop in a thread), real tokens over real HTTP.

Every server test runs on both store backends (the ``backend`` parameter): SQLite, and
PostgreSQL in a fresh database of a real server: ``MTB_TEST_POSTGRES`` (a URL whose user may
create databases), else a throwaway cluster started here when PostgreSQL is installed
(:mod:`tests.pgcluster`). Without either, the PostgreSQL runs are skipped with the reason, and
under ``CI=true`` they fail instead.

The session server has a rate limit too high to trip; ``make_server`` starts others (e.g.
with a tight rate limit) that stop at the end of the test.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
import yarl

from mtb import keys
from server import cli
from server.app import app_from_data_dir
from server.config import load_config
from server.store import Store, open_store
from server.thread import ServerThread
from tests import pgcluster

PID = 1234
OTHER_PID = 4321  # a second participant, added to the participant metadata by the fixture
ROLES = ("val", "ins", "pos", "tvm", "admin")
PASSWORD = "correct horse battery staple"
FARE = {"amount": 100.0, "currency": "SEK", "vatAmount": 6.0, "vatPercent": 6.0}


def _product(product_id: str, **extra: Any) -> dict[str, Any]:
    return {"productId": product_id, "productTitle": "Single, 2 hours", "validityPeriod": "PT2H",
            "productCategoryId": "single", "fareCategoryId": "standard", "travellerCategoryId": "adult",
            "fares": [FARE], "spatialValidity": {"groups": [{"groupType": "zone", "groupIds": ["A", "B"]}]},
            "modesOfTransport": ["bus", "tram"], **extra}


# The test deployments' product catalogue (products.json): what api.manifest() sells.
CATALOGUE = {
    "zoneSystems": [{"zoneSystemId": "test", "zones": ["A", "B", "C"]}],
    "fareCategories": [{"fareCategoryId": "standard", "fareCategoryDescription": "Standard fare"}],
    "productCategories": [{"productCategoryId": "single", "productCategoryDescription": "Single ticket"}],
    "travellerCategories": [{"travellerCategoryId": "adult", "travellerCategoryDescription": "Adult"}],
    "products": [
        _product("single-2h"),
        _product("single-2h-sa1", spatialValidity={"groups": [{"groupType": "zone", "groupIds": ["A", "B"]},
                                                             {"groupType": "stopArea", "groupIds": ["SA1"]}]}),
        _product("single-c", spatialValidity={"groups": [{"groupType": "zone", "groupIds": ["C"]}]}),
    ],
}
BACKENDS = ("sqlite", "postgresql")
POSTGRES_ENV = "MTB_TEST_POSTGRES"


class PostgresServer:
    """Fresh databases on one PostgreSQL server, dropped at the end of the session."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.created: list[str] = []
        self._numbers = itertools.count()

    def _admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> str:
        """The URL of a new, empty database."""
        # id(self): test packages that import these fixtures (tests/b2b) get their own instance
        name = f"mtb_test_{os.getpid()}_{id(self) % 100_000}_{next(self._numbers)}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + name))

    def drop_all(self) -> None:
        for name in self.created:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_unavailable(reason: str) -> None:
    message = (f"PostgreSQL runs not possible: {reason}. Install PostgreSQL (apt-get install postgresql) or set "
               f"{POSTGRES_ENV}=postgresql://user@host/db (a user that may create databases)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(f"SKIPPED ON POSTGRESQL: {message}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get(POSTGRES_ENV)
    cluster = None
    if not url:
        try:
            cluster = pgcluster.start_temporary()
        except RuntimeError as exc:
            postgres_unavailable(str(exc))
        url = cluster.url  # type: ignore[union-attr]
    server = PostgresServer(url)
    try:
        server._admin("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any connection failure is "not available"
        postgres_unavailable(f"cannot connect to {url}: {exc}")
    yield server
    server.drop_all()
    if cluster is not None:
        cluster.stop()
        shutil.rmtree(cluster.directory.parent, ignore_errors=True)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend this run of a server test uses."""
    if request.param == "postgresql":
        request.getfixturevalue("postgres_server")
    return request.param


@pytest.fixture(scope="session")
def database_for(backend: str, request: pytest.FixtureRequest) -> Any:
    """``database_for()`` -> the ``database`` setting of a new deployment on this run's backend
    (a fresh PostgreSQL database, or the default SQLite file)."""
    def make() -> dict[str, str]:
        if backend == "sqlite":
            return {}
        return {"database": request.getfixturevalue("postgres_server").create()}
    return make


class Deployment:
    def __init__(self, data_dir: Path, server: ServerThread):
        self.data_dir = data_dir
        self.server = server
        self.config = load_config(data_dir)
        self.base = self.server.origin + self.config.base_path
        self._tokens: dict[str, str] = {}

    def store(self) -> Store:
        """The deployment's store, opened a second time (as another process would)."""
        return open_store(self.config.database_target(), pool_size=1)

    def rows(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """A read of the deployment's database (portable SQL, ``?`` placeholders), as tuples."""
        store = self.store()
        try:
            return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in store.db.query(sql, params)]
        finally:
            store.close()

    def tables(self) -> list[str]:
        if self.config.database_target().startswith("postgresql://"):
            sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return sorted(r[0] for r in self.rows(sql))

    def url(self, path: str) -> str:
        return self.base + path

    def basic(self, entity: str, password: str = PASSWORD) -> str:
        return "Basic " + base64.b64encode(f"{entity}:{password}".encode()).decode()

    def token(self, role: str) -> str:
        """A real token for credential ``<role>1`` (admin: ``admin``), fetched over HTTP once."""
        if role not in self._tokens:
            entity = "admin" if role == "admin" else f"{role}1"
            request = urllib.request.Request(self.url(f"/auth/{entity}"), headers={"Authorization": self.basic(entity)})
            with urllib.request.urlopen(request, timeout=10) as response:
                self._tokens[role] = json.load(response)["jwtCompact"]
        return self._tokens[role]

    def private_key(self, name: str) -> Any:
        return keys.load_private_key((self.data_dir / name).read_bytes())


# What the second participant may do here (tests that check the default pass participants={}).
OTHER_GRANT = {str(OTHER_PID): {"roles": ["val", "ins", "pos", "tvm"],
                                "entities": [f"{role}-of-{OTHER_PID}" for role in ("val", "ins", "pos", "tvm")]}}


# Cheap password hashes, so that the many deployments the tests make start quickly; the tests of
# hashing itself use the production parameters (test_login.py).
FAST_HASH = {"time_cost": 1, "memory_kib": 8192, "parallelism": 1}


def make_data_dir(path: Path, **config: Any) -> Path:
    config.setdefault("participants", OTHER_GRANT)
    config.setdefault("password_hash", FAST_HASH)
    cli.init_data_dir(path, pid=PID, name="Test Transit", admin_password=PASSWORD, **config)
    for role in ROLES[:-1]:
        cli.add_credential(path, f"{role}1", role, PASSWORD)
    cli.add_credential(path, "val2", "val", PASSWORD)
    # A second participant: its own issuer and auth-token keys, listed in the trust list.
    other_issuer, other_auth = keys.generate_es256_key(), keys.generate_es256_key()
    (path / "other-issuer.pem").write_bytes(keys.private_key_pem(other_issuer))
    (path / "other-auth.pem").write_bytes(keys.private_key_pem(other_auth))
    metadata = json.loads((path / "participant-metadata.json").read_text())
    metadata += keys.participant_metadata(OTHER_PID, [keys.public_jwk(other_issuer, f"{OTHER_PID}:issuer-1")],
                                          [keys.public_jwk(other_auth, f"{OTHER_PID}:auth-1")], name="Other")
    (path / "participant-metadata.json").write_text(json.dumps(metadata, indent=2))
    (path / "products.json").write_text(json.dumps(CATALOGUE, indent=2))
    return path


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory, database_for: Any) -> Iterator[Deployment]:
    data_dir = make_data_dir(tmp_path_factory.mktemp("server") / "data", **database_for(),
                             rate_limit={"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}})
    server = ServerThread(app_from_data_dir(data_dir)).start()
    deployment = Deployment(data_dir, server)
    yield deployment
    # The server must still be answering after every test has had a go at it.
    with urllib.request.urlopen(deployment.url("/openapi.json"), timeout=10) as response:
        assert response.status == 200
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path, database_for: Any) -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(**config: Any) -> Deployment:
        data_dir = make_data_dir(tmp_path / f"data{len(started)}", **{**database_for(), **config})
        server = ServerThread(app_from_data_dir(data_dir)).start()
        started.append(server)
        return Deployment(data_dir, server)

    yield start
    for server in started:
        server.stop()


class Reply:
    def __init__(self, status: int, headers: Any, body: Any, text: str):
        self.status, self.headers, self.body, self.text = status, headers, body, text

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.text[:300]}>"


class Api:
    """HTTP client for one test: ``await api.get("/ticket/x", role="pos")`` -> :class:`Reply`."""

    def __init__(self, deployment: Deployment, session: aiohttp.ClientSession):
        self.d = deployment
        self.session = session

    async def call(self, method: str, path: str, *, role: str | None = "admin", token: str | None = None,
                   json_body: Any = None, data: Any = None, headers: dict[str, str] | None = None,
                   params: Any = None, encoded: bool = False) -> Reply:
        """``encoded=True`` sends the path exactly as given (``%2E%2E`` stays, not resolved as ``..``)."""
        headers = dict(headers or {})
        if token is not None:
            headers["X-BoB-AuthToken"] = token
        elif role is not None:
            headers["X-BoB-AuthToken"] = self.d.token(role)
        if json_body is not None:
            data = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        url = yarl.URL(self.d.url(path), encoded=True) if encoded else self.d.url(path)
        async with self.session.request(method, url, data=data, headers=headers, params=params,
                                        allow_redirects=False) as response:
            text = await response.text()
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = None
            return Reply(response.status, response.headers, body, text)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, json_body=body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PUT", path, json_body=body, **kw)

    async def manifest(self, role: str = "pos", product: str = "single-2h", count: int = 1) -> str:
        """A manifest for ``count`` tickets of a catalogue product (BoB's productSelections)."""
        reply = await self.post("/manifest", {"productSelections": [{"productId": product}] * count}, role=role)
        assert reply.status == 201, reply
        return reply.body["manifest"]

    async def issue(self, traveller: str = "trav-1", role: str = "pos", *, manifest: dict[str, Any] | None = None,
                    **call: Any) -> Reply:
        template = await self.manifest(role=role, **(manifest or {}))
        body = {"manifestMtbTemplate": template, "ticketHolder": {"travellerId": traveller}, **call}
        return await self.post("/ticket", body, role=role)

    async def ticket_id(self, traveller: str = "trav-1", **kw: Any) -> str:
        reply = await self.issue(traveller, **kw)
        assert reply.status == 201, reply
        return reply.body["ticketIds"][0]


@pytest.fixture
async def api(deployment: Deployment) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Api(deployment, session)


@pytest.fixture
async def api_for() -> Any:
    """``await api_for(deployment)``: a client for a deployment of ``make_server``."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(deployment: Deployment) -> Api:
        sessions.append(aiohttp.ClientSession())
        return Api(deployment, sessions[-1])

    yield make
    for session in sessions:
        await session.close()


def event(ticket_id: str = "T-foreign", local_id: str = "L1", **extra: Any) -> dict[str, Any]:
    """A full BoB ticketEvent."""
    body = {
        "ticketId": ticket_id, "localEventId": local_id, "time": "2026-03-02T08:30:00.000Z",
        "eventType": "validation", "eventResult": 0, "eventReason": "ok",
        "mtbReference": {"pid": PID, "issuerSignature": "c2lnbmF0dXJl"},
        "deviceReference": {"pid": PID, "did": "phone-1"},
        "geo": {"lat": 55.6, "long": 13.0, "alt": 12.5},
        "stopArea": {"pid": PID, "stopAreaId": "SA1", "nextStopAreaId": "SA2"},
        "zone": {"pid": PID, "zoneId": "A"}, "service": {"pid": PID, "serviceId": "S1", "tripId": "T1", "blockId": "B1"},
        "modeOfTransport": "bus", "validator": {"validatorId": "V1", "location": "vehicle", "sublocation": "door 1"},
        "operatingDayDate": "2026-03-02",
    }
    body.update(extra)
    return body


@pytest.fixture
def make_event() -> Any:
    return event


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say it loudly when the PostgreSQL runs did not happen: SQLite alone was tested."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "SKIPPED ON POSTGRESQL" in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} PostgreSQL runs SKIPPED: the server store was tested on "
                                        "SQLite only (the reason is in the summary)", red=True, bold=True)
