"""Sync against the real bundled server on 127.0.0.1 (in a thread, its own event loop), with a
real device cache, and optionally a controlled clock shared by the device and the server's rate
limiter (so "a minute" means the same simulated minute on both sides)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.cache import Cache
from agent.engine import Engine
from agent.sync import ServerClient, Syncer
from server.app import app_from_data_dir
from server.context import CTX
from server.thread import ServerThread

from ..server.conftest import PASSWORD, Api, Deployment, make_data_dir
from ..simclock import SimulatedClock

HIGH_LIMIT = {"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}}


@dataclass
class LocalServer:
    deployment: Deployment
    thread: ServerThread
    running: bool = True

    def stop(self) -> None:
        """An outage: the port closes (a new server gets another one)."""
        if self.running:
            self.running = False
            self.thread.stop()

    @property
    def base(self) -> str:
        return self.deployment.base

    @property
    def data_dir(self) -> Path:
        return self.deployment.data_dir

    def events_stored(self) -> dict[str, int]:
        """localEventId -> how many times the server stored it (read from its own database)."""
        import sqlite3

        with sqlite3.connect(self.data_dir / "server.sqlite3") as conn:
            return dict(conn.execute("SELECT local_event_id, count(*) FROM events GROUP BY local_event_id"))


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """``start_server(clock=None, **config)``: a fresh deployment; ``clock`` drives its rate limiter."""
    started: list[LocalServer] = []

    def start(clock: SimulatedClock | None = None, **config: Any) -> LocalServer:
        data_dir = make_data_dir(tmp_path / f"server{len(started)}", **config)
        app = app_from_data_dir(data_dir)
        if clock is not None and app[CTX].limiter is not None:
            app[CTX].limiter.clock = clock.monotonic
        thread = ServerThread(app).start()
        started.append(LocalServer(Deployment(data_dir, thread), thread))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for server in started:
        server.stop()


@dataclass
class Device:
    cache: Cache
    engine: Engine
    client: ServerClient
    syncer: Syncer


@pytest.fixture
async def make_device(tmp_path: Path) -> Any:
    """``make_device(base_url, clock=None, entity="val1", upload_interval_s=..., ...)``."""
    devices: list[Device] = []

    def make(base_url: str, *, clock: SimulatedClock | None = None, entity: str = "val1", password: str = PASSWORD,
             batch_size: int = 200, upload_interval_s: float = 5.0, feeds_interval_s: float = 60.0,
             **client: Any) -> Device:
        cache = Cache(tmp_path / f"device{len(devices)}.db", durability="normal")
        engine = Engine(cache)
        client.setdefault("allow_insecure_http", True)
        server_client = ServerClient(base_url, entity, password, clock=clock, **client)
        syncer = Syncer(engine, server_client, batch_size=batch_size, upload_interval_s=upload_interval_s,
                        feeds_interval_s=feeds_interval_s)
        devices.append(Device(cache, engine, server_client, syncer))
        return devices[-1]

    yield make
    for device in devices:
        await device.client.close()
        device.engine.close()
        device.cache.close()


@pytest.fixture
async def office() -> Any:
    """``office(server)``: the back office's HTTP API on a server (issue, revoke)."""
    async with aiohttp.ClientSession() as session:
        yield lambda server: Api(server.deployment, session)
