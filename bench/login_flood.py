"""A login flood against a bundled server on 127.0.0.1, and what the feeds feel of it.

Prints: how long ``GET /stops`` and ``GET /participantMetadata`` take while N wrong logins are
being hashed (the login limit raised so that every guess is hashed), how many of the flood got
401, 429 and 503, and, with the default login limit, what 300 concurrent wrong guesses followed
by the correct password get.

    .venv/bin/python bench/login_flood.py [--flood 300]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.app import app_from_data_dir  # noqa: E402
from server.context import CTX  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from tests.server.conftest import PASSWORD, Deployment, make_data_dir  # noqa: E402

STOPS = "stop_id,stop_name,stop_lat,stop_lon,zone_id\nSA1,Central,55.6,13.0,A\n"
PRODUCTION_HASH = {"time_cost": 3, "memory_kib": 65536, "parallelism": 4}
NO_RATE_LIMIT = {"requests": 1_000_000, "window_seconds": 60, "block_seconds": 1, "roles": {}}  # the feeds poll fast


async def flood_and_poll(d: Deployment, flood: int) -> None:
    token = d.token("val")
    hasher = d.server.app[CTX].hasher
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def login(i: int) -> int:
            async with session.get(f"{d.base}/auth/val1",
                                   headers={"Authorization": d.basic("val1", f"wrong-guess-{i:05d}")}) as r:
                return r.status

        async def feed(path: str) -> float:
            started = time.perf_counter()
            async with session.get(f"{d.base}{path}", headers={"X-BoB-AuthToken": token}) as r:
                await r.read()
                assert r.status == 200, r.status
            return time.perf_counter() - started

        started = time.perf_counter()
        logins = [asyncio.create_task(login(i)) for i in range(flood)]
        waits: list[float] = []
        while not all(t.done() for t in logins) and len(waits) < 10_000:
            waits.append(await feed("/stops"))
            waits.append(await feed("/participantMetadata"))
            await asyncio.sleep(0.05)
        statuses = Counter(await asyncio.gather(*logins))
        elapsed = time.perf_counter() - started
    print(f"flood of {flood} wrong logins (production argon2id, {d.config.password_hash.workers} hash workers): "
          f"{dict(statuses)} in {elapsed:.1f} s, {hasher.done} hashed")
    print(f"  feeds during the flood: {len(waits)} calls, median {statistics.median(waits) * 1000:.1f} ms, "
          f"max {max(waits) * 1000:.1f} ms")


async def block_is_a_block(d: Deployment, guesses: int) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def login(password: str) -> int:
            async with session.get(f"{d.base}/auth/pos1", headers={"Authorization": d.basic("pos1", password)}) as r:
                return r.status

        statuses = Counter(await asyncio.gather(*(login(f"guess-{i:05d}-xx") for i in range(guesses))))
        correct = await login(PASSWORD)
    print(f"{guesses} concurrent wrong guesses (login_limit {d.config.login_limit.failures} failures): "
          f"{dict(statuses)}, {d.server.app[CTX].hasher.done} hashed; then the correct password: {correct}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, config, scenario in (
                ("flood", {"login_limit": {"failures": 1_000_000}, "password_hash": PRODUCTION_HASH,
                           "rate_limit": NO_RATE_LIMIT,
                           "connections": {"per_address": 4000, "total": 4000}}, flood_and_poll),
                ("block", {"password_hash": PRODUCTION_HASH, "connections": {"per_address": 4000, "total": 4000}},
                 block_is_a_block)):
            data = make_data_dir(Path(tmp) / name, **config)
            (data / "stops.txt").write_text(STOPS)
            server = ServerThread(app_from_data_dir(data)).start()
            try:
                asyncio.run(scenario(Deployment(data, server), args.flood))
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
