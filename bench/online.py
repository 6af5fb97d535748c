"""Benchmark: how long a device waits for the server's online answers, with N events stored
(default 200,000 over 20,000 MTBs, preloaded through the store):

- ``GET /fraudcheck`` (the velocity from the MTB's nearest sighting; an agent asks it within a
  budget of 150 ms before accepting a ticket), one distinct MTB per request;
- ``POST /validation/{ticketId}?mtb=`` without a result (online validation: decode, verify the
  issuer signature, deny list, nearest sighting, store the event with the verdict).

    .venv/bin/python bench/online.py                    # 200k events stored, 500 requests of each
    .venv/bin/python bench/online.py --preload 1000000

One client on loopback, one request at a time; the server in a thread of this process. Prints
p50, p95, p99 and max in milliseconds.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from mtb.timeutil import format_basic  # noqa: E402
from server import cli  # noqa: E402
from server.app import app_from_data_dir  # noqa: E402
from server.config import load_config  # noqa: E402
from server.store import NewEvent, open_store  # noqa: E402
from server.thread import ServerThread  # noqa: E402

PID = 1234
PASSWORD = "bench-password"


def reference(i: int) -> str:
    return base64.urlsafe_b64encode(i.to_bytes(32, "big")).rstrip(b"=").decode()


def preload(data_dir: Path, count: int, mtbs: int) -> float:
    store = open_store(data_dir / load_config(data_dir).database)
    started = time.perf_counter()
    at = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    rng = random.Random(1)
    chunk = 5000
    for start in range(0, count, chunk):
        batch = []
        for i in range(start, min(count, start + chunk)):
            sig, lat, long = reference(i % mtbs), 55.6 + rng.random() / 10, 13.0 + rng.random() / 10
            body = {"ticketId": f"T{i % mtbs}", "time": "2026-03-02T08:00:00.000Z", "localEventId": f"pre-{i}",
                    "mtbReference": {"pid": PID, "issuerSignature": sig}, "geo": {"lat": lat, "long": long}}
            batch.append(NewEvent(f"pre-{i}", f"T{i % mtbs}", at + timedelta(seconds=i), 0, body,
                                  f"{PID}:{sig}", lat, long))
        store.ingest_events(f"preload-{start % 7}", PID, "validation", at, batch)
    seconds = time.perf_counter() - started
    store.close()
    print(f"preloaded {count:,} events over {mtbs:,} MTBs in {seconds:.1f} s")
    return seconds


def figures(name: str, latencies: list[float]) -> None:
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1e3  # noqa: E731
    print(f"{name:<22} {len(latencies):>5} requests  p50 {pick(.5):6.1f}  p95 {pick(.95):6.1f}  "
          f"p99 {pick(.99):6.1f}  max {latencies[-1] * 1e3:6.1f} ms")


async def drive(base: str, requests: int, mtbs: int) -> None:
    async with aiohttp.ClientSession() as session:
        tokens = {}
        for entity in ("bench-val", "bench-pos"):
            basic = "Basic " + base64.b64encode(f"{entity}:{PASSWORD}".encode()).decode()
            async with session.get(f"{base}/auth/{entity}", headers={"Authorization": basic}) as reply:
                tokens[entity] = {"X-BoB-AuthToken": (await reply.json())["jwtCompact"]}
        rng = random.Random(2)
        latencies = []
        for i in rng.sample(range(mtbs), min(requests, mtbs)):
            query = {"mtbReference": {"pid": PID, "issuerSignature": reference(i)}, "time": "20260302T120000Z",
                     "geo": {"lat": 57.7, "long": 11.97}}
            started = time.perf_counter()
            async with session.get(f"{base}/fraudcheck", json=query, headers=tokens["bench-val"]) as reply:
                body = await reply.json()
            latencies.append(time.perf_counter() - started)
            assert reply.status == 200 and body["velocity"] > 0, body
        figures("GET /fraudcheck", latencies)

        async with session.post(f"{base}/manifest", headers=tokens["bench-pos"],
                                json={"productSelections": [{"productId": "single-AB-adult"}]}) as reply:
            manifest = (await reply.json())["manifest"]
        async with session.post(f"{base}/ticket", headers=tokens["bench-pos"],
                                json={"manifestMtbTemplate": manifest, "issueMtb": True}) as reply:
            issued = await reply.json()
        ticket_id, barcode = issued["ticketIds"][0], issued["ticketBundle"]["mtb"]
        latencies = []
        for n in range(requests):
            event = {"ticketId": ticket_id, "time": format_basic(datetime.now(timezone.utc)),
                     "localEventId": f"online-{n}", "zone": {"pid": PID, "zoneId": "A"}}
            started = time.perf_counter()
            async with session.post(f"{base}/validation/{ticket_id}", json=event, params={"mtb": barcode},
                                    headers=tokens["bench-val"]) as reply:
                body = await reply.json()
            latencies.append(time.perf_counter() - started)
            assert reply.status == 201 and body["ticketEventStatus"] in (0, 9), body
        figures("POST /validation?mtb=", latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preload", type=int, default=200_000, help="events stored before the run")
    parser.add_argument("--mtbs", type=int, default=20_000, help="distinct MTBs among them")
    parser.add_argument("--requests", type=int, default=500, help="requests of each kind")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-online-")) / "data"
    server = None
    try:
        cli.init_data_dir(data_dir, pid=PID, admin_password=PASSWORD, rate_limit={"enabled": False})
        cli.add_credential(data_dir, "bench-val", "val", PASSWORD)
        cli.add_credential(data_dir, "bench-pos", "pos", PASSWORD)
        shutil.copyfile(ROOT / "agent" / "sample" / "products.json", data_dir / "products.json")
        preload(data_dir, args.preload, args.mtbs)
        server = ServerThread(app_from_data_dir(data_dir)).start()
        asyncio.run(drive(f"{server.origin}/api/v1", args.requests, args.mtbs))
        print(f"python {sys.version.split()[0]}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
