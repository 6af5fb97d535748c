"""``python -m server serve --workers 3`` on PostgreSQL: three processes behind one port, and
what they must share lives in the database.

Connections are spread by the kernel (SO_REUSEPORT), so the test pins a client to each worker:
a session with a single kept-alive connection, asked ``/health`` for the pid it reached, until
there is one per worker. Then: the rate limit holds across workers, the same batch posted to
two workers at once is stored once, concurrent revokes on different workers get unique,
increasing deny ids, a reader paging the deny list while they commit never skips one, a
long-poll held by one worker answers when a revoke commits on another, and ``/metrics`` from
any worker adds up all three.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mtb import keys
from server import jws

from .conftest import PID, event, make_data_dir

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 3
VAL_LIMIT = 30  # requests per minute for the val role; the other roles get room for the test's own calls
ROOMY = {"requests": 100_000}


class Pinned:
    """A client whose every request reaches the one worker its connection was accepted by."""

    def __init__(self, session: aiohttp.ClientSession, base: str, pid: int):
        self.session, self.base, self.pid = session, base, pid

    async def call(self, method: str, path: str, token: str, body: Any = None, params: Any = None) -> Any:
        headers = {"X-BoB-AuthToken": token}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        async with self.session.request(method, self.base + path, data=data, headers=headers,
                                        params=params) as reply:
            text = await reply.text()
            return reply.status, json.loads(text) if text else None


@pytest.fixture
def cluster(tmp_path: Path, postgres_server: Any) -> Any:
    data = make_data_dir(tmp_path / "data", database=postgres_server.create(),
                         rate_limit={"requests": VAL_LIMIT, "window_seconds": 60, "block_seconds": 30,
                                     "roles": {"pos": ROOMY, "admin": ROOMY, "ins": ROOMY}})
    proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--data", str(data), "--port", "0",
                             "--workers", str(WORKERS)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert "with 3 workers" in line, line
    port = int(line.split(" on ")[1].split()[0].rsplit(":", 1)[1])
    base = f"http://127.0.0.1:{port}/api/v1"
    for _ in range(150):
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    yield data, base
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out


async def pin_one_per_worker(base: str) -> tuple[list[Pinned], list[aiohttp.ClientSession]]:
    pinned: dict[int, Pinned] = {}
    sessions = []
    for _ in range(300):  # the workers start side by side: the last may still be importing
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with session.get(base + "/health") as reply:
            pid = (await reply.json())["pid"]
        if pid not in pinned:
            pinned[pid] = Pinned(session, base, pid)
            sessions.append(session)
        else:
            await session.close()
            await asyncio.sleep(0.05)
        if len(pinned) == WORKERS:
            break
    assert len(pinned) == WORKERS, f"reached only workers {sorted(pinned)}"
    return list(pinned.values()), sessions


async def test_three_workers_share_limits_dedupe_and_one_deny_sequence(cluster: Any) -> None:
    data, base = cluster
    tokens = {role: token(data, f"{role}1", role) for role in ("val", "pos", "ins")}
    workers, sessions = await pin_one_per_worker(base)
    try:
        for worker in workers:  # every pinned client really stays on its worker
            async with worker.session.get(base + "/health") as reply:
                assert (await reply.json())["pid"] == worker.pid

        # 1. the rate limit holds across workers: val2 sends 12 through each of the three
        val2 = token(data, "val2", "val")
        statuses = await asyncio.gather(*(w.call("GET", "/blacklist", val2) for w in workers for _ in range(12)))
        assert Counter(status for status, _ in statuses) == {200: VAL_LIMIT, 429: 3 * 12 - VAL_LIMIT}

        # 2. the same batch posted to two workers at once is stored once
        batch = [event(f"T-w-{i % 5}", f"w-{i}") for i in range(50)]
        (s1, r1), (s2, r2) = await asyncio.gather(workers[0].call("POST", "/validation", tokens["val"], batch),
                                                  workers[1].call("POST", "/validation", tokens["val"], batch))
        assert s1 == s2 == 200 and r1 is None and r2 is None  # BoB: the whole batch stored, no body
        store = open_store_of(data)
        try:
            stored = store.db.query("SELECT count(*) AS n FROM events WHERE local_event_id LIKE 'w-%'")[0]["n"]
        finally:
            store.close()
        assert stored == 50

        # 3 and 4. concurrent revokes on different workers, and a reader paging meanwhile
        tickets = []
        for i in range(24):
            tickets.append(await issue(workers[i % WORKERS], tokens["pos"], f"trav-w{i}"))
        seen: list[int] = []
        done = asyncio.Event()

        async def read() -> None:
            high = 0
            while True:
                finished = done.is_set()
                status, page = await workers[2].call("GET", "/blacklist", tokens["ins"],
                                                     params={"blacklistEntryId": high, "limit": 1000})
                assert status == 200
                seen.extend(e["blacklistEntryId"] for e in page)
                high = page[-1]["blacklistEntryId"] if page else high
                if finished and not page:
                    return
                await asyncio.sleep(0)

        reader = asyncio.create_task(read())
        revokes = await asyncio.gather(*(workers[i % WORKERS].call("PUT", f"/ticket/{tid}/revoke", tokens["pos"])
                                         for i, tid in enumerate(tickets)))
        assert all(status == 200 and body["revoked"] for status, body in revokes)
        done.set()
        await asyncio.wait_for(reader, 60)
        status, everything = await workers[0].call("GET", "/blacklist", tokens["ins"], params={"limit": 1000})
        ids = [e["blacklistEntryId"] for e in everything]
        assert sorted({e["ticketId"] for e in everything}) == sorted(tickets)
        assert ids == sorted(set(ids)) and len(ids) == len(tickets)  # unique and increasing
        assert seen == ids  # the reader missed none, saw none twice

        # 5. a long-poll held by one worker answers when a revoke commits on another (NOTIFY)
        extra = await issue(workers[0], tokens["pos"], "trav-w-push")
        held = asyncio.create_task(workers[2].call("GET", "/blacklist", tokens["ins"],
                                                   params={"blacklistEntryId": ids[-1], "wait": 30}))
        await asyncio.sleep(0.5)
        assert not held.done()
        status, _ = await workers[0].call("PUT", f"/ticket/{extra}/revoke", tokens["pos"])
        assert status == 200
        status, pushed = await asyncio.wait_for(held, 10)  # long before the 30 s
        assert status == 200 and [e["ticketId"] for e in pushed] == [extra]

        # 6. /metrics from one worker counts the requests all three answered
        async with workers[1].session.get(base + "/metrics") as reply:
            text = await reply.text()
        health = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "mtb_server_http_requests_total" and s.labels.get("route") == "getHealth"]
        assert health and health[0] >= 2 * WORKERS  # the /health calls above, whichever worker answered
    finally:
        for session in sessions:
            await session.close()


def token(data: Path, sub: str, role: str) -> str:
    """A token as GET /auth issues it, signed with the deployment's key (the workers share it)."""
    now = int(time.time())
    return jws.sign(keys.load_private_key((data / "authtoken-key.pem").read_bytes()),
                    {"typ": "JWT", "kid": f"{PID}:auth-1"},
                    {"iss": str(PID), "sub": sub, "iat": now, "exp": now + 600, "bobAuthZ": role})


async def issue(worker: Pinned, token: str, traveller: str) -> str:
    status, manifest = await worker.call("POST", "/manifest", token, {"productSelections": [{"productId": "single-2h"}]})
    assert status == 201, manifest
    status, issued = await worker.call("POST", "/ticket", token, {
        "manifestMtbTemplate": manifest["manifest"], "ticketHolder": {"travellerId": traveller}})
    assert status == 201, issued
    return issued["ticketIds"][0]


def open_store_of(data: Path) -> Any:
    from server.config import load_config
    from server.store import open_store
    return open_store(load_config(data).database_target(), pool_size=1)

