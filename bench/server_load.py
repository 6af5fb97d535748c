"""Load on the bundled ticket server: N concurrent validator clients for T seconds.

The server runs in this process (its own event loop in a thread) on 127.0.0.1 only, on a fresh
data directory; each client is a validator with its own credential and token. A client loops
until the deadline: POST /validation with a new batch (55%), the same batch again as after a
lost acknowledgement (15%), one event again through POST /validation/{ticketId} (5%, a 303),
or a feed read: /blacklist, /participantMetadata (with If-None-Match), /device/kdk (25%).

Prints requests/s, latency p50/p90/p99/max (all and per kind), the status histogram, the 5xx
count, and events sent vs stored (lost and extra must both be 0). Exit status 1 otherwise.

    .venv/bin/python bench/server_load.py [--clients 100] [--seconds 10] [--batch 20] [--process]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from mtb import keys  # noqa: E402
from server import auth, cli, jws  # noqa: E402
from server.app import app_from_data_dir  # noqa: E402
from server.config import load_config  # noqa: E402
from server.thread import ServerThread  # noqa: E402
from server.store import Credential, open_store  # noqa: E402

PID = 1234
HOST = "127.0.0.1"  # loopback only, never configurable


class ServerProcess:
    """``python -m server serve`` on 127.0.0.1 and a free port, stopped with SIGTERM."""

    def __init__(self, data_dir: Path):
        import socket
        import subprocess
        import urllib.request

        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        root = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "server", "serve", "--data", str(data_dir), "--host", HOST,
                                      "--port", str(self.port)], cwd=root, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{HOST}:{self.port}/api/v1/openapi.json", timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)


def event(ticket_id: str, local_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "ticketId": ticket_id, "localEventId": local_id,
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventType": "validation", "eventResult": rng.choice([0, 0, 0, 0, 1, 3, 5, 8]), "eventReason": "bench",
        "mtbReference": {"pid": PID, "issuerSignature": "c2lnbmF0dXJl"},
        "geo": {"lat": 55.6 + rng.random() / 100, "long": 13.0, "alt": 12.0},
        "stopArea": {"pid": PID, "stopAreaId": f"SA{rng.randrange(400)}"}, "zone": {"pid": PID, "zoneId": "A"},
        "modeOfTransport": "bus", "validator": {"validatorId": "bench", "location": "vehicle"},
        "operatingDayDate": "2026-03-02",
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    def __init__(self, base: str, tokens: dict[str, str], seconds: float, batch: int, seed: int):
        self.base, self.tokens, self.seconds, self.batch, self.seed = base, tokens, seconds, batch, seed
        self.sent: dict[str, set[str]] = {sub: set() for sub in tokens}  # localEventIds stored (200), per device
        self.resent = 0
        self.statuses: Counter[int] = Counter()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    async def request(self, session: aiohttp.ClientSession, kind: str, method: str, path: str, sub: str,
                      body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        started = time.perf_counter()
        try:
            async with session.request(method, self.base + path, json=body, allow_redirects=False,
                                       headers={"X-BoB-AuthToken": self.tokens[sub], **(headers or {})}) as resp:
                text = await resp.text()
                status, resp_headers = resp.status, resp.headers
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            self.statuses[0] += 1
            return 0, None, {}
        self.latency[kind].append(time.perf_counter() - started)
        self.statuses[status] += 1
        try:
            return status, json.loads(text) if text else None, resp_headers
        except ValueError:
            return status, None, resp_headers

    async def client(self, session: aiohttp.ClientSession, index: int, sub: str, deadline: float) -> None:
        rng = random.Random(self.seed * 100_003 + index)
        batches: list[list[dict[str, Any]]] = []
        etag: str | None = None
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.55 or not batches:
                batch = [event(f"T-{index}-{rng.randrange(100)}", f"{sub}-{uuid.uuid4().hex}", rng)
                         for _ in range(rng.randrange(1, self.batch + 1))]
                status, _, _ = await self.request(session, "post-batch", "POST", "/validation", sub, batch)
                if status == 200:  # BoB: the whole batch stored, no body
                    self.sent[sub].update(ev["localEventId"] for ev in batch)
                    batches.append(batch)
                elif status != 0:
                    self.errors.append(f"{sub}: new batch got {status}")
            elif roll < 0.70:
                batch = rng.choice(batches)
                status, _, _ = await self.request(session, "resend-batch", "POST", "/validation", sub, batch)
                self.resent += len(batch)
                if status not in (0, 200):
                    self.errors.append(f"{sub}: re-sent batch got {status}")
            elif roll < 0.75:
                ev = rng.choice(rng.choice(batches))
                status, _, _ = await self.request(session, "resend-single", "POST", f"/validation/{ev['ticketId']}",
                                                  sub, ev)
                self.resent += 1
                if status not in (0, 303):
                    self.errors.append(f"{sub}: single re-send got {status}")
            else:
                path = rng.choice(["/blacklist?blacklistEntryId=0&limit=100", "/participantMetadata", "/device/kdk"])
                extra = {"If-None-Match": etag} if etag and path == "/participantMetadata" else None
                status, _, headers = await self.request(session, "feed", "GET", path, sub, headers=extra)
                if path == "/participantMetadata" and headers.get("ETag"):
                    etag = headers["ETag"]
                if status not in (0, 200, 304):
                    self.errors.append(f"{sub}: GET {path} got {status}")

    async def run(self) -> float:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
            started = time.monotonic()
            deadline = started + self.seconds
            await asyncio.gather(*(self.client(session, i, sub, deadline) for i, sub in enumerate(self.tokens)))
            return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=20, help="largest batch a client posts (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--process", action="store_true",
                        help="run the server as its own process (python -m server) instead of in-process: "
                             "client and server then stop sharing one GIL")
    args = parser.parse_args()
    if not 1 <= args.clients <= 2000 or not 0 < args.seconds <= 600:
        parser.error("--clients 1..2000, --seconds up to 600")

    with tempfile.TemporaryDirectory(prefix="server-load-") as tmp:
        data_dir = Path(tmp) / "data"
        cli.init_data_dir(data_dir, pid=PID, name="Load", admin_password="load-admin",
                          rate_limit={"requests": 10_000_000, "window_seconds": 60, "block_seconds": 1, "roles": {}},
                          max_batch_events=max(args.batch, 100))
        config = load_config(data_dir)
        subs = [f"load-{i:04d}" for i in range(args.clients)]
        hashed = auth.hash_password("load-password")
        store = open_store(data_dir / config.database)
        for sub in subs:
            store.add_credential(Credential(sub, "val", PID, hashed, datetime.now(timezone.utc)))
        store.close()
        auth_key = keys.load_private_key((data_dir / "authtoken-key.pem").read_bytes())
        now = int(time.time())
        tokens = {sub: jws.sign(auth_key, {"typ": "JWT", "kid": config.authtoken_kid},
                                {"iss": str(PID), "sub": sub, "iat": now, "exp": now + 3600, "bobAuthZ": "val"})
                  for sub in subs}

        server: Any = ServerProcess(data_dir) if args.process else ServerThread(app_from_data_dir(data_dir)).start()
        base = f"http://{HOST}:{server.port}{config.base_path}"
        where = "its own process" if args.process else "in-process"
        print(f"{args.clients} clients for {args.seconds:.0f} s against {base} (server {where})", flush=True)
        load = Load(base, tokens, args.seconds, args.batch, args.seed)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        try:
            elapsed = asyncio.run(load.run())
        finally:
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            server.stop()
        own_cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_note = (f"client process {own_cpu:.1f} s, server process {child.ru_utime + child.ru_stime:.1f} s"
                    if args.process else f"client and server together {own_cpu:.1f} s (one process, one GIL)")

        db = sqlite3.connect(data_dir / config.database)
        stored = dict(db.execute("SELECT sub, count(*) FROM events GROUP BY sub").fetchall())
        stored_ids = {(s, lid): i for s, lid, i in db.execute("SELECT sub, local_event_id, id FROM events")}
        db.close()

    sent = sum(len(ids) for ids in load.sent.values())
    stored_total = sum(stored.values())
    lost = sum(1 for sub, ids in load.sent.items() for lid in ids if (sub, lid) not in stored_ids)
    extra = stored_total - (sent - lost)
    requests = sum(load.statuses.values())
    all_latency = [v for values in load.latency.values() for v in values]
    fivexx = sum(n for s, n in load.statuses.items() if s >= 500)
    print(f"\nrequests:        {requests:,} in {elapsed:.1f} s = {requests / elapsed:,.0f} requests/s")
    print(f"latency (ms):    p50 {percentile(all_latency, .5) * 1e3:.1f}  p90 {percentile(all_latency, .9) * 1e3:.1f}  "
          f"p99 {percentile(all_latency, .99) * 1e3:.1f}  max {max(all_latency, default=0) * 1e3:.1f}")
    for kind in sorted(load.latency):
        values = load.latency[kind]
        print(f"  {kind:<14} {len(values):>7,}  p50 {percentile(values, .5) * 1e3:7.1f}  "
              f"p99 {percentile(values, .99) * 1e3:7.1f}  mean {statistics.fmean(values) * 1e3:7.1f}")
    print("statuses:        " + "  ".join(f"{s or 'conn-error'}: {n:,}" for s, n in sorted(load.statuses.items())))
    print(f"5xx:             {fivexx}")
    print(f"CPU time:        {cpu_note}")
    print(f"events sent:     {sent:,} new, {load.resent:,} re-sent as duplicates "
          f"({sent / elapsed:,.0f} new events/s)")
    print(f"events stored:   {stored_total:,}   lost: {lost}   extra: {extra}")
    if load.errors:
        print(f"client-side problems: {len(load.errors)}; first: {load.errors[:3]}")
    return 1 if fivexx or lost or extra or load.errors or load.statuses.get(0) else 0


if __name__ == "__main__":
    sys.exit(main())
