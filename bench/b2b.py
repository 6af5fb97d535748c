"""Benchmark of the employer side (issue 13): HR sync, month roll-over, webhook deliveries.

    .venv/bin/python bench/b2b.py                     # 10,000 employees, SQLite
    .venv/bin/python bench/b2b.py --employees 1000    # quick run
    .venv/bin/python bench/b2b.py --database postgresql://user@host/db   # an empty database

Prints: the first HR sync of N employees and a second one with 100 changes (time, rows/s, over
real HTTP on 127.0.0.1); the roll-over issuing N tickets (tickets/s by the wall clock and by
this process's CPU time); the documents it queued, half rendered by one process and half by two
processes side by side (``python -m server b2b documents``, sharing the queue through its
claims), documents/s each; webhook deliveries/s to a loopback receiver that verifies every
signature (deploy/examples/webhook_receiver.py's verify). The machine's other load moves the
wall-clock figures; the CPU figures move less.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from server import cli  # noqa: E402
from server.app import app_from_data_dir  # noqa: E402
from server.b2b import keys, webhooks  # noqa: E402
from server.b2b.cli import open_b2b, run_deliver  # noqa: E402
from server.b2b.service import render_documents, rollover  # noqa: E402
from server.b2b.records import Product  # noqa: E402
from server.b2b.store import B2BStore  # noqa: E402
from server.b2b.subscription import Plan  # noqa: E402
from server.store import open_store  # noqa: E402
from server.thread import ServerThread  # noqa: E402


def receiver_module():
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "deploy/examples/webhook_receiver.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def roster(n: int, changed: int = 0) -> list[dict]:
    start = (date.today() - timedelta(days=400)).isoformat()
    rows = []
    for i in range(n):
        last = "Changed" if i < changed else f"Employee{i}"
        rows.append({"firstName": "Anna", "lastName": last, "email": f"e{i}@example.com", "hrId": f"HR{i:06d}",
                     "startDate": start, "dateOfBirth": "1990-04-15", "terminationDate": None, "absences": []})
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--database", help="a PostgreSQL URL (an empty database); default SQLite")
    args = parser.parse_args()
    n = args.employees
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cli.init_data_dir(data, admin_password="bench-password-long", **({"database": args.database}
                                                                         if args.database else {}),
                          max_body_bytes=64 * 1024 * 1024, rate_limit={"enabled": False},
                          b2b={"jobs": False, "rate_limit": {"enabled": False}, "webhook_concurrency": 32,
                               "webhook_allowed_networks": ["127.0.0.1"]})
        store = B2BStore(open_store(args.database or data / "server.sqlite3", pool_size=2).db)
        now = datetime.now(timezone.utc)
        company = store.add_company("Bench GmbH", Product("job-ticket", ("A", "B"), ("bus", "tram"),
                                                          {"amount": 49.0, "currency": "EUR", "vatAmount": 3.43,
                                                           "vatPercent": 7.0}), Plan(), now)
        integration = store.add_integration(company, "bench", now)
        key, secret = keys.new_key(company, ["view-employees", "add-employees", "update-employees",
                                             "remove-employees"], now)
        store.add_api_key(key)
        hook_secret = webhooks.new_secret()
        verify = receiver_module().verify
        received = 0

        async def hook(request: web.Request) -> web.Response:
            nonlocal received
            body = await request.read()
            verify(hook_secret, request.headers.get(webhooks.HEADER), body)
            received += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        store.add_endpoint(company, f"http://127.0.0.1:{port}/hook", list(webhooks.EVENT_TYPES), hook_secret, now)

        server = ServerThread(app_from_data_dir(data)).start()
        auth = "Basic " + base64.b64encode(f"{key.key_id}:{secret}".encode()).decode()
        url = f"{server.origin}/b2b/hr-integrations/{integration}/sync"
        print(f"B2B benchmark: {n} employees, loopback, "
              f"{'PostgreSQL' if args.database else 'SQLite (synchronous=NORMAL)'}, {os.cpu_count()} cores")
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:
            for label, body in (("first sync", roster(n)), ("sync with 100 changes", roster(n, 100))):
                payload = json.dumps({"syncId": label, "employees": body}).encode()
                started = time.perf_counter()
                async with http.post(url, data=payload, headers={"Content-Type": "application/json"}) as response:
                    assert response.status == 204, await response.text()
                took = time.perf_counter() - started
                print(f"  HR sync, {label:22s} {n:6d} rows  {took:7.2f} s  {n / took:9.0f} rows/s  "
                      f"({len(payload) / 1e6:.1f} MB body)")
        server.stop()

        b2b = open_b2b(data)
        wall, cpu = time.perf_counter(), time.process_time()
        result = await rollover(b2b, datetime.now(timezone.utc), render=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert result.issued == n and not result.errors, result
        print(f"  roll-over: {result.issued} tickets issued in {wall:.1f} s: {result.issued / wall:.0f} tickets/s "
              f"({result.issued / cpu:.0f}/s of this process's CPU; documents queued for after)")
        one = n // 2
        wall, cpu = time.perf_counter(), time.process_time()
        rendered = 0
        while rendered < one:  # half the queue by this one process
            batch = await render_documents(b2b, max_batches=1)
            if not batch:
                break
            rendered += batch
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"  documents (PDF + Aztec), 1 process:   {rendered:6d} in {wall:6.1f} s: {rendered / wall:5.0f} "
              f"documents/s ({rendered / cpu:.0f}/s of its CPU)")
        b2b.ctx.run.close()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        wall = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, "-m", "server", "b2b", "documents", "--data", str(data)],
                                    env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        counts = [json.loads(w.communicate()[0])["documents"] for w in workers]
        wall = time.perf_counter() - wall
        print(f"  documents, 2 processes side by side: {sum(counts):6d} in {wall:6.1f} s: {sum(counts) / wall:5.0f} "
              f"documents/s (each took {counts} from the shared queue; process start included)")

        pending = store.pending_deliveries()
        started = time.perf_counter()
        delivered = await run_deliver(data, None)
        took = time.perf_counter() - started
        print(f"  webhooks: {received} of {pending} deliveries in {took:.1f} s: {received / took:.0f} deliveries/s "
              f"(signatures verified; {delivered['pending']} left pending)")
        await runner.cleanup()
        store.db.close()


if __name__ == "__main__":
    asyncio.run(main())
