"""Anonymous floods of the public endpoints, and what a device feels meanwhile: a fresh
bundled server on 127.0.0.1, ``--clients`` connections fetching one public path (no token, no
limit applies) for ``--seconds``, while a validator reads the deny list every 0.2 s. Prints
the requests the flood got through and the validator's median and worst latency.

    .venv/bin/python bench/public_flood.py [--path /api/v1/openapi.json] [--clients 100] [--seconds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.app import app_from_data_dir  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from tests.server.conftest import Deployment, make_data_dir  # noqa: E402


async def flood(d: Deployment, path: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    token = d.token("val")
    done = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one() -> None:
            nonlocal done
            while time.monotonic() < stop:
                async with session.get(d.server.origin + path) as response:
                    await response.read()
                    done += 1

        async def device() -> list[float]:
            latencies = []
            while time.monotonic() < stop:
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                async with session.get(d.url("/blacklist?blacklistEntryId=0&limit=1"),
                                       headers={"X-BoB-AuthToken": token}) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
            return latencies

        *_, latencies = await asyncio.gather(*(one() for _ in range(clients)), device())
    return done, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/api/v1/openapi.json", help="a public path (no token)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp) / "data")
        server = ServerThread(app_from_data_dir(data)).start()
        try:
            done, latencies = asyncio.run(flood(Deployment(data, server), args.path, args.clients, args.seconds))
        finally:
            server.stop()
    print(f"{args.path}: {done} anonymous requests in {args.seconds:g} s from {args.clients} clients; "
          f"validator's deny-list read: median {statistics.median(latencies) * 1000:.1f} ms, "
          f"worst {max(latencies) * 1000:.1f} ms ({len(latencies)} reads)")


if __name__ == "__main__":
    main()
