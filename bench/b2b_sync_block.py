"""What one partner's HR sync costs the devices on the same server: a fresh bundled server on
127.0.0.1 (SQLite by default), a company whose roster of ``--employees`` rows (as many as fit
the default 4 MB body) is replaced by another of as many new people (every one offboarded,
every one added, one transaction), while a validator posts one event and reads the deny list.
Prints the sync's time and the validator's waits.

    .venv/bin/python bench/b2b_sync_block.py [--employees 36000] [--database postgresql://...]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.b2b.conftest import Company, start_world, token  # noqa: E402
from tests.server.conftest import event  # noqa: E402


def roster(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"firstName": "A", "lastName": "B", "email": f"{tag}{i}@x.io", "hrId": f"{tag}{i}",
             "startDate": "2024-01-01"} for i in range(n)]


async def measure(company: Company, n: int) -> None:
    world = company.world
    async with aiohttp.ClientSession() as session:
        world.session = session
        started = time.perf_counter()
        assert (await company.sync(roster(n, "a"))).status == 204
        print(f"first sync, {n} added: {time.perf_counter() - started:.1f} s")
        headers = {"X-BoB-AuthToken": await asyncio.to_thread(token, world, "val1")}
        api = world.server.origin + "/api/v1"

        async def device(method: str, path: str, body: Any = None) -> float:
            await asyncio.sleep(0.5)
            began = time.perf_counter()
            async with session.request(method, api + path, json=body, headers=headers) as response:
                await response.read()
                assert response.status < 300, response.status
            return time.perf_counter() - began

        began = time.perf_counter()
        sync, posted, read = await asyncio.gather(
            company.sync(roster(n, "b")),
            device("POST", "/validation", [event(f"T-{time.time()}", f"L-{time.time()}")]),
            device("GET", "/blacklist?blacklistEntryId=0&limit=1"))
        assert sync.status == 204, sync
        print(f"second sync, {n} offboarded and {n} added: {time.perf_counter() - began:.1f} s; meanwhile a "
              f"validator's POST /validation waited {posted:.1f} s, its GET /blacklist {read:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--employees", type=int, default=36_000)
    parser.add_argument("--database", help="an empty PostgreSQL database's URL; default SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = start_world(Path(tmp) / "data", {"database": args.database} if args.database else {})
        try:
            asyncio.run(measure(world.company("Big GmbH"), args.employees))
        finally:
            world.server.stop()
            world.store.db.close()
    print(f"({datetime.now(timezone.utc):%Y-%m-%d}, {'PostgreSQL' if args.database else 'SQLite'})")


if __name__ == "__main__":
    main()
