"""Benchmark: events/s ingested through ``POST /validation`` in batches of 100, one client,
loopback, with N events already stored (default 1,000,000, preloaded through the store).

    .venv/bin/python bench/server_ingest.py                      # 1M preloaded, 300 batches
    .venv/bin/python bench/server_ingest.py --preload 100000     # quick run

The server runs as its own process (``python -m server``), as in production, with the rate
limit switched off for the benchmark credential. Prints figures; the goal is >= 5,000 events/s.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from server import cli  # noqa: E402
from server.config import load_config  # noqa: E402
from server.store import open_store  # noqa: E402

PID = 1234
PASSWORD = "bench-password"
GOAL = 5000


def event(ticket_id: str, local_id: str, i: int) -> dict:
    return {
        "ticketId": ticket_id, "localEventId": local_id, "time": "2026-03-02T08:30:00.000Z",
        "eventType": "validation", "eventResult": 0 if i % 10 else 7, "eventReason": "ok",
        "mtbReference": {"pid": PID, "issuerSignature": "MEUCIQDx3l0aVx8Xb1n9-kq2dYvY1v3nM4j7P9sL5c2A1g8"},
        "deviceReference": {"pid": PID, "did": "phone-9f3a"},
        "geo": {"lat": 55.605 + i % 100 / 1e4, "long": 13.0038, "alt": 12.0},
        "stopArea": {"pid": PID, "stopAreaId": f"SA{i % 400}", "nextStopAreaId": f"SA{(i + 1) % 400}"},
        "zone": {"pid": PID, "zoneId": "A"},
        "service": {"pid": PID, "serviceId": "5", "tripId": f"trip-{i % 900}", "blockId": "b-12"},
        "modeOfTransport": "bus", "validator": {"validatorId": "bench-validator", "location": "vehicle",
                                                 "sublocation": "door 1"},
        "operatingDayDate": "2026-03-02",
    }


def preload(data_dir: Path, count: int) -> float:
    config = load_config(data_dir)
    store = open_store(data_dir / config.database)
    started = time.perf_counter()
    chunk = 50_000
    body = json.dumps(event("T0", "x", 0), separators=(",", ":"))
    for start in range(0, count, chunk):
        rows = ((f"preload-dev-{i % 200}", f"pre-{i}", f"T{i % 100_000}", "validation", "2026-03-01T08:30:00.000Z",
                 0, PID, "2026-03-01T08:30:01.000Z", body) for i in range(start, min(count, start + chunk)))
        store.bulk_load_events(rows)
    seconds = time.perf_counter() - started
    stored = store.count_events()
    store.close()
    print(f"preloaded {stored:,} events in {seconds:.1f} s ({stored / max(seconds, 1e-9):,.0f}/s through the store)")
    return seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


def count_events(data_dir: Path) -> int:
    db = sqlite3.connect(data_dir / load_config(data_dir).database)
    try:
        return db.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        db.close()


async def drive(base: str, proc: subprocess.Popen, batches: int, batch_size: int, data_dir: Path) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_up(session, f"{base}/openapi.json", proc)
        basic = "Basic " + base64.b64encode(f"bench-val:{PASSWORD}".encode()).decode()
        async with session.get(f"{base}/auth/bench-val", headers={"Authorization": basic}) as response:
            token = (await response.json())["jwtCompact"]
        headers = {"X-BoB-AuthToken": token, "Content-Type": "application/json"}
        run_id = f"{time.time_ns():x}"
        bodies = [json.dumps([event(f"T{(b * batch_size + i) % 100_000}", f"{run_id}-{b}-{i}", i)
                              for i in range(batch_size)]) for b in range(batches + 10)]

        async def post(body: str) -> float:
            t0 = time.perf_counter()
            async with session.post(f"{base}/validation", data=body, headers=headers) as response:
                if response.status != 200:
                    raise SystemExit(f"POST /validation -> {response.status}: {await response.text()}")
                await response.read()
            return time.perf_counter() - t0

        for body in bodies[:10]:  # warm-up
            await post(body)
        before = count_events(data_dir)
        latencies = []
        started = time.perf_counter()
        for body in bodies[10:]:
            latencies.append(await post(body))
        elapsed = time.perf_counter() - started
        assert count_events(data_dir) == before + batches * batch_size  # every new event stored once
        events = batches * batch_size
        rate = events / elapsed
        latencies.sort()
        print(f"ingested {events:,} new events in {batches} batches of {batch_size} in {elapsed:.2f} s: "
              f"{rate:,.0f} events/s (goal {GOAL:,}: {'met' if rate >= GOAL else 'NOT met'})")
        print(f"batch latency ms: p50 {statistics.median(latencies) * 1e3:.1f}, "
              f"p95 {latencies[int(len(latencies) * 0.95)] * 1e3:.1f}, max {latencies[-1] * 1e3:.1f}")

        started = time.perf_counter()
        for body in bodies[10:10 + min(50, batches)]:
            await post(body)
        assert count_events(data_dir) == before + batches * batch_size  # re-posted: nothing stored again
        replay = min(50, batches) * batch_size / (time.perf_counter() - started)
        print(f"re-posting already stored batches (dedupe path): {replay:,.0f} events/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preload", type=int, default=1_000_000, help="events stored before the run")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="server-ingest-")) / "data"
    proc = None
    try:
        cli.init_data_dir(data_dir, pid=PID, admin_password=PASSWORD, rate_limit={"enabled": False})
        cli.add_credential(data_dir, "bench-val", "val", PASSWORD)
        preload(data_dir, args.preload)
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "server", "--data", str(data_dir), "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        asyncio.run(drive(f"http://127.0.0.1:{port}/api/v1", proc, args.batches, args.batch_size, data_dir))
        size = sum(p.stat().st_size for p in data_dir.iterdir() if p.name.startswith("server.sqlite3"))
        print(f"database {size / 1e6:,.0f} MB; python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
