"""Power-cut driver (issue 6, item 1): a validator process on a stream of scans, killed with
SIGKILL at random moments, and the checks of what it leaves behind.

The child side (``child_stream``) is what a validator does on each scan: build a Context,
``Engine.validate_sync`` on a real SQLite cache file (durability "full"), and only when that
returns (the outbox and usage rows committed) write one line to stdout::

    DECIDED <localEventId>:<eventResult>[,<localEventId>:<eventResult>...]

That line is "the decision reported to the passenger": the parent reads it, and after every
kill checks that each reported event is in the outbox.

Two ways to start a child (``PowerCut(spawn=...)``):

* ``fork`` (default): one *zygote* process imports the agent once and, for each round, forks a
  child that opens the cache itself (no connection crosses the fork) and runs the stream. The
  parent SIGKILLs that child by pid; the zygote reaps it and reports ``EXIT <pid> <status>``.
  A round costs a fork (~2 ms) rather than a Python start-up with the agent's imports
  (~300 ms here), so hundreds of kills fit in a test.
* ``exec``: a fresh ``python scan_stream.py child ...`` per round, killed the same way: the
  slow, most literal form (bench/power_cut.py --spawn exec).

The scans come from a file of base64url lines written by the parent (``make_pool``): valid
single- and double-ticket MTBs (each drawn many times, so passback history decides most
scans), device-bound ones (the child device-signs them at scan time; lines prefixed ``DEV ``),
expired tickets, and garbage. Which scans a child makes is decided by its seed.

``check_cache`` and ``sync_and_check`` hold the assertions' facts; the test and the bench both
use them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mtb  # noqa: E402
from mtb import keys, signer  # noqa: E402
from agent.cache import Cache  # noqa: E402
from mtb.policy import Policy  # noqa: E402
from mtb.scan_context import Context, Geo, Validator  # noqa: E402
from agent.engine import Engine  # noqa: E402
from agent.sync import ServerClient, Syncer  # noqa: E402
from mtb.timeutil import parse_time  # noqa: E402

DEVICE_ID = "bus-powercut"
PID = 1234
KDK_ID, KDK = "kdk-pc", b"p" * 32
VALIDATOR = Validator(DEVICE_ID, "vehicle", "door 1")
GEO = Geo(59.33, 18.06)


# --- the scan pool (parent side) --------------------------------------------------------------

@dataclass
class Pool:
    path: Path
    valid: set[str] = field(default_factory=set)  # ticket ids whose history must read 0, 8, 8, ...
    expired: set[str] = field(default_factory=set)  # always 3
    lines: int = 0
    passback_window_s: float = Policy().passback_window_s  # the children's policy


def make_pool(directory: Path, *, seed: int = 6, passback_window_s: float | None = None) -> Pool:
    """Write the scan file and a cache with the matching keys (``directory``/device.db)."""
    rng = random.Random(seed)
    key = keys.generate_es256_key()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    span = dict(valid_from=now - timedelta(hours=1), valid_until=now + timedelta(hours=3))
    pool = Pool(directory / "scans.txt")
    if passback_window_s is not None:
        pool.passback_window_s = passback_window_s
    lines: list[str] = []

    def issue(*tickets: signer.TicketSpec, **header: Any) -> bytes:
        return signer.mint(key, pid=PID, kid=f"{PID}:pc", tickets=tickets, **header)

    for i in range(30):
        tid = f"PC-T{i:02d}"
        pool.valid.add(tid)
        form = rng.choice(["base64url", "zlib+base64url"])
        lines.append(str(mtb.wrap_transport(issue(signer.TicketSpec(tid, zones=["A"], **span)), form)))
    for i in range(5):  # two tickets in one MTB: one decision, two events, two histories
        a, b = f"PC-D{i}a", f"PC-D{i}b"
        pool.valid |= {a, b}
        lines.append(str(mtb.wrap_transport(issue(signer.TicketSpec(a, **span), signer.TicketSpec(b, **span)),
                                            "zlib+base64url")))
    for i in range(3):  # bound to a phone; the child adds the device signature at scan time
        tid = f"PC-P{i}"
        pool.valid.add(tid)
        container = issue(signer.TicketSpec(tid, **span), bind_device=f"phone-{i}")
        lines.append(f"DEV phone-{i} {mtb.b64url_encode(container)}")
    for i in range(3):
        tid = f"PC-X{i}"
        pool.expired.add(tid)
        old = dict(valid_from=now - timedelta(days=2), valid_until=now - timedelta(days=1))
        lines.append(str(mtb.wrap_transport(issue(signer.TicketSpec(tid, **old)), "base64url")))
    for i in range(8):  # garbage: random bytes, a truncated MTB, text that is not base64url
        lines.append(mtb.b64url_encode(rng.randbytes(rng.randint(1, 300))))
    lines.append(lines[0][: len(lines[0]) // 2])
    lines.append("not base64url at all!")
    pool.path.write_text("\n".join(lines) + "\n")
    pool.lines = len(lines)

    cache = Cache(directory / "device.db", durability="full")
    cache.import_metadata(keys.participant_metadata(PID, [keys.public_jwk(key, f"{PID}:pc")]))
    cache.add_kdk(KDK_ID, KDK)
    cache.close()
    return pool


# --- the child ----------------------------------------------------------------------------------

def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _scan_bytes(line: str, at: datetime) -> bytes:
    if line.startswith("DEV "):
        _, did, container = line.split(" ", 2)
        return mtb.b64url_encode(signer.device_sign(
            mtb.b64url_decode(container), did=did, kid=KDK_ID, device_key=keys.derive_device_key(KDK, did),
            at=at)).encode()
    return line.encode()


def child_stream(db: str, scans_file: str, seed: int, count: int = 0, window_s: float | None = None) -> None:
    """Validate scans until killed (or ``count`` scans); one DECIDED line after each commit."""
    os.write(1, f"START {os.getpid()}\n".encode())  # first: a kill may land while the cache opens
    scans = Path(scans_file).read_text().splitlines()
    rng = random.Random(seed)
    engine = Engine(Cache(db, durability="full"),
                    Policy() if window_s is None else Policy(passback_window_s=window_s))
    boot = _boot_id()
    done = 0
    while not count or done < count:
        line = rng.choice(scans)
        now = datetime.now(timezone.utc)
        ctx = Context(time=now, validator=VALIDATOR, zone="A", stop_area="SA1", geo=GEO, mode_of_transport="bus",
                      operator_pid=PID, boot_id=boot, monotonic=time.monotonic() if boot else None)
        decision = engine.validate_sync(_scan_bytes(line, now), ctx)
        # Committed; now (and only now) the passenger is told. One write(2), so one whole line.
        report = ",".join(f"{e['localEventId']}:{e['eventResult']}" for e in decision.events)
        os.write(1, f"DECIDED {report}\n".encode())
        done += 1
    os.write(1, b"DONE\n")


def child_upload(db: str, job: dict[str, Any]) -> None:
    """The uploader, to be cut mid-sync: drain the outbox with the agent's Syncer."""
    os.write(1, f"START {os.getpid()}\n".encode())
    sent = asyncio.run(upload(db, job["base_url"], job["entity"], job["password"], batch_size=job["batch_size"]))
    os.write(1, f"UPLOADED {sent}\nDONE\n".encode())


def zygote(db: str, scans_file: str, window_s: float | None = None) -> None:
    """Read ``RUN <seed>`` or ``UPLOAD <json>`` lines; fork a child per line, reap it, report
    ``EXIT <pid> <status>``."""
    os.write(1, b"READY\n")
    for command in iter(sys.stdin.readline, ""):
        parts = command.split(maxsplit=1)
        if not parts or parts[0] == "QUIT":
            break
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if parts[0] == "UPLOAD":
                    child_upload(db, json.loads(parts[1]))
                else:
                    args = parts[1].split()
                    child_stream(db, scans_file, int(args[0]), int(args[1]) if len(args) > 1 else 0, window_s)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        os.write(1, f"EXIT {pid} {status}\n".encode())


# --- the parent -----------------------------------------------------------------------------------

class Lines:
    """Lines from a pipe, read with a deadline (select), never blocking past it."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer, self.eof = fd, b"", False

    def next(self, deadline: float | None) -> str | None:
        """The next line, or None at the deadline or EOF."""
        while b"\n" not in self.buffer:
            if self.eof:
                return None
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self.fd], [], [], timeout)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.eof = True
                continue
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


@dataclass
class Figures:
    rounds: int = 0
    kills: int = 0  # children that died of our SIGKILL
    other_exits: list[str] = field(default_factory=list)  # anything else is a failure
    decisions: int = 0  # DECIDED lines read
    reported: dict[str, int] = field(default_factory=dict)  # localEventId -> eventResult as reported
    reported_twice: list[str] = field(default_factory=list)
    kills_before_first_decision: int = 0
    seconds: float = 0.0
    start_seconds: list[float] = field(default_factory=list)  # RUN/exec to the child's START line
    upload_rounds: int = 0
    upload_kills: int = 0  # uploaders cut mid-sync
    resent: set[str] = field(default_factory=set)  # stored by the server, cut before the acknowledgement


class PowerCut:
    """Run ``rounds`` children, each SIGKILLed after a random ``lifetime_ms`` (lo, hi)."""

    def __init__(self, directory: Path, pool: Pool, *, spawn: str = "fork", lifetime_ms: tuple[float, float] = (10, 150),
                 seed: int = 1) -> None:
        self.directory, self.pool, self.spawn, self.lifetime_ms = directory, pool, spawn, lifetime_ms
        self.db = str(directory / "device.db")
        self.rng = random.Random(seed)
        self.figures = Figures()
        self.stderr_path = directory / "children.stderr"
        self._stderr = open(self.stderr_path, "ab")
        self._zygote: subprocess.Popen[bytes] | None = None
        self._zlines: Lines | None = None

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), *args, "--db", self.db, "--scans", str(self.pool.path),
                "--passback-window", repr(self.pool.passback_window_s)]

    def _start_zygote(self) -> None:
        self._zygote = subprocess.Popen(self._command("zygote"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self._stderr, bufsize=0)
        self._zlines = Lines(self._zygote.stdout.fileno())  # type: ignore[union-attr]
        if self._zlines.next(time.monotonic() + 30) != "READY":
            raise RuntimeError(f"zygote did not start: {self.stderr_text()}")

    def stderr_text(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def run(self, rounds: int) -> Figures:
        started = time.monotonic()
        if self.spawn == "fork":
            self._start_zygote()
        try:
            for _ in range(rounds):
                self._round()
        finally:
            self.close()
        self.figures.seconds += time.monotonic() - started
        return self.figures

    def cut_uploads(self, rounds: int, base_url: str, entity: str, password: str, server_db: str | Path, *,
                    batch_size: int = 250, lifetime_ms: tuple[float, float] = (50, 600),
                    until_resent: int = 0, max_rounds: int = 0) -> Figures:
        """Upload the outbox from children SIGKILLed mid-sync: ``rounds`` of them, and more (up to
        ``max_rounds``) until ``until_resent`` events were caught stored by the server but not yet
        acknowledged (the case the server's dedupe is for). Stops early once a child finishes."""
        job = json.dumps({"base_url": base_url, "entity": entity, "password": password, "batch_size": batch_size})
        self._start_zygote()
        try:
            for number in range(max(rounds, max_rounds)):
                if number >= rounds and len(self.figures.resent) >= until_resent:
                    break
                self.figures.upload_rounds += 1
                assert self._zygote is not None and self._zlines is not None
                self._zygote.stdin.write(f"UPLOAD {job}\n".encode())  # type: ignore[union-attr]
                first = self._zlines.next(time.monotonic() + 30)
                if first is None or not first.startswith("START "):
                    raise RuntimeError(f"uploader did not start ({first!r}): {self.stderr_text()}")
                pid = int(first.split()[1])
                deadline = time.monotonic() + self.rng.uniform(*lifetime_ms) / 1000
                line = self._zlines.next(deadline)
                finished = line is not None
                if not finished:
                    os.kill(pid, 9)
                while line is None or not line.startswith("EXIT "):
                    line = self._zlines.next(time.monotonic() + 60)
                    if line is None:
                        raise RuntimeError(f"zygote stopped answering: {self.stderr_text()}")
                raw = int(line.split()[2])
                if os.WIFSIGNALED(raw) and os.WTERMSIG(raw) == 9:
                    self.figures.upload_kills += 1
                elif raw != 0:
                    self.figures.other_exits.append(f"uploader round {self.figures.upload_rounds}: {line}")
                self.figures.resent |= stored_not_acknowledged(self.db, server_db)
                if finished:
                    break
        finally:
            self.close()
        return self.figures

    def close(self) -> None:
        if self._zygote is not None:
            try:
                self._zygote.stdin.write(b"QUIT\n")  # type: ignore[union-attr]
                self._zygote.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self._zygote.wait(10)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
            self._zygote = None
        self._stderr.flush()

    def _record(self, line: str) -> bool:
        """Take one line from a child; True when it was a decision."""
        if not line.startswith("DECIDED "):
            return False
        self.figures.decisions += 1
        for item in line[len("DECIDED "):].split(","):
            lid, _, result = item.rpartition(":")
            if lid in self.figures.reported:
                self.figures.reported_twice.append(lid)
            self.figures.reported[lid] = int(result)
        return True

    def _round(self) -> None:
        self.figures.rounds += 1
        seed = self.rng.getrandbits(48)
        process = None
        asked = time.monotonic()
        if self.spawn == "fork":
            assert self._zygote is not None and self._zlines is not None
            self._zygote.stdin.write(f"RUN {seed}\n".encode())  # type: ignore[union-attr]
            lines = self._zlines
        else:
            process = subprocess.Popen(self._command("child", "--seed", str(seed)), stdout=subprocess.PIPE,
                                       stderr=self._stderr, bufsize=0)
            lines = Lines(process.stdout.fileno())  # type: ignore[union-attr]
        first = lines.next(time.monotonic() + 30)
        if first is None or not first.startswith("START "):
            raise RuntimeError(f"child did not start ({first!r}): {self.stderr_text()}")
        pid = int(first.split()[1])
        self.figures.start_seconds.append(time.monotonic() - asked)
        deadline = time.monotonic() + self.rng.uniform(*self.lifetime_ms) / 1000
        decided = 0
        exited: str | None = None
        while True:  # read decisions until the moment of the cut
            line = lines.next(deadline)
            if line is None:
                break
            if line.startswith("EXIT ") or line == "DONE":
                exited = line
                break
            decided += self._record(line)
        if exited is None:
            os.kill(pid, 9)  # the power cut
        # Everything the child wrote before it died is in the pipe ahead of EXIT / EOF.
        while True:
            line = lines.next(time.monotonic() + 30)
            if line is None:
                break
            if line.startswith("EXIT "):
                exited = line
                break
            decided += self._record(line)
        if process is not None:
            process.stdout.close()  # type: ignore[union-attr]
            status = process.wait(30)
            killed = status == -9
            exited = f"exit status {status}"
        else:
            if exited is None or not exited.startswith("EXIT "):
                raise RuntimeError(f"zygote stopped answering ({exited!r}): {self.stderr_text()}")
            raw = int(exited.split()[2])
            killed = os.WIFSIGNALED(raw) and os.WTERMSIG(raw) == 9
        if killed:
            self.figures.kills += 1
            self.figures.kills_before_first_decision += decided == 0
        else:
            self.figures.other_exits.append(f"round {self.figures.rounds}: {exited}")


# --- the checks -------------------------------------------------------------------------------------

def check_cache(db: str | Path, pool: Pool, figures: Figures) -> dict[str, Any]:
    """What the cache holds after the cuts, and every inconsistency found (``problems``)."""
    problems: list[str] = []
    conn = sqlite3.connect(db)
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems.append(f"integrity_check: {integrity[:5]}")
        outbox = conn.execute("SELECT seq, local_event_id, event_type, body FROM outbox ORDER BY seq").fetchall()
        usage = conn.execute("SELECT id, ticket_id, time, event_type, result, device_id FROM usage ORDER BY id").fetchall()
    finally:
        conn.close()
    bodies = {lid: json.loads(body) for _, lid, _, body in outbox}
    lids = [lid for _, lid, _, _ in outbox]
    duplicates = [lid for lid, n in Counter(lids).items() if n > 1]
    if duplicates:
        problems.append(f"{len(duplicates)} localEventId(s) twice in the outbox: {duplicates[:3]}")
    if figures.reported_twice:
        problems.append(f"{len(figures.reported_twice)} localEventId(s) reported twice: {figures.reported_twice[:3]}")
    lost = [lid for lid in figures.reported if lid not in bodies]
    if lost:
        problems.append(f"{len(lost)} reported decision(s) missing from the outbox: {lost[:3]}")
    wrong = [lid for lid, result in figures.reported.items() if lid in bodies and bodies[lid]["eventResult"] != result]
    if wrong:
        problems.append(f"{len(wrong)} outbox event(s) differ from the reported result: {wrong[:3]}")
    for lid, body in bodies.items():
        if body.get("localEventId") != lid:
            problems.append(f"outbox row {lid} carries localEventId {body.get('localEventId')}")

    # Usage history and outbox are written in one transaction: one usage row per event.
    from_outbox = Counter((b["ticketId"], b["time"], b["eventType"], b["eventResult"]) for b in bodies.values())
    from_usage = Counter((t, when, kind, result) for _, t, when, kind, result, _ in usage)
    if from_outbox != from_usage:
        problems.append(f"usage and outbox differ: only in outbox {list((from_outbox - from_usage).items())[:3]}, "
                        f"only in usage {list((from_usage - from_outbox).items())[:3]}")
    if len(usage) != len(outbox):
        problems.append(f"{len(usage)} usage rows for {len(outbox)} outbox events")

    # Decisions against history: per ticket, in recording order. A valid ticket is accepted, then
    # refused with 8 until the passback window has passed since that accept (runs longer than the
    # window see it accepted again); within 50 ms of the window's end either is right, since the
    # engine measures with the monotonic clock and this check with the events' wall times.
    window, slack = pool.passback_window_s, 0.05
    history: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for b in (bodies[lid] for lid in lids):
        history[b["ticketId"]].append((parse_time(b["time"]), b["eventResult"]))
    accepted_twice = []
    for ticket_id, events in history.items():
        if ticket_id in pool.valid:
            last_accept: datetime | None = None
            for at, result in events:
                elapsed = None if last_accept is None else (at - last_accept).total_seconds()
                allowed = ({0} if elapsed is None or elapsed > window + slack else
                           {8} if elapsed < window - slack else {0, 8})
                if result not in allowed:
                    problems.append(f"{ticket_id}: result {result} at {at:%H:%M:%S.%f}, "
                                    f"{elapsed if elapsed is None else round(elapsed, 3)} s after its last accept "
                                    f"(expected {sorted(allowed)})")
                    if result == 0:
                        accepted_twice.append(ticket_id)
                if result == 0:
                    last_accept = at
            continue
        expected = 3 if ticket_id in pool.expired else 1 if ticket_id.startswith("unreadable:") else None
        if expected is None:
            problems.append(f"unexpected ticket id {ticket_id!r}")
        elif any(result != expected for _, result in events):
            problems.append(f"{ticket_id}: results {sorted({r for _, r in events})} (expected only {expected})")
    if accepted_twice:
        problems.append(f"accepted twice within the passback window: {sorted(set(accepted_twice))}")
    if figures.other_exits:
        problems.append(f"{len(figures.other_exits)} child(ren) ended otherwise than by our SIGKILL: "
                        f"{figures.other_exits[:3]}")
    return {"integrity": integrity[0] if len(integrity) == 1 else integrity, "outbox": len(outbox),
            "usage": len(usage), "lost": len(lost), "duplicates": len(duplicates) + len(figures.reported_twice),
            "committed_unreported": len(set(bodies) - set(figures.reported)),
            "tickets": len(history), "accepted": sum(r == 0 for e in history.values() for _, r in e),
            "passback_refusals": sum(r == 8 for e in history.values() for _, r in e), "problems": problems,
            "lids": set(bodies)}


async def upload(db: str | Path, base_url: str, entity: str, password: str, *, batch_size: int = 500) -> int:
    """Drain the outbox with the agent's own Syncer; returns events acknowledged."""
    engine = Engine(Cache(db, durability="full"))
    client = ServerClient(base_url, entity, password, allow_insecure_http=True, max_requests_per_minute=100_000)
    try:
        syncer = Syncer(engine, client, batch_size=batch_size)
        sent = await syncer.upload_pending()
        sent += await syncer.upload_pending()  # a second pass finds nothing left
        return sent
    finally:
        await client.close()
        engine.close()
        engine.cache.close()


def stored_not_acknowledged(db: str | Path, server_db: str | Path) -> set[str]:
    """Events the server holds that are still in the outbox: an uploader was cut between the
    server's answer and the acknowledgement, so the next upload sends them again."""
    conn = sqlite3.connect(db)
    try:
        pending = {lid for (lid,) in conn.execute("SELECT local_event_id FROM outbox")}
    finally:
        conn.close()
    return pending & set(server_counts(server_db))


def server_counts(server_db: str | Path) -> Counter[str]:
    """localEventId -> number of stored events, read straight from the server's database."""
    conn = sqlite3.connect(f"file:{server_db}?mode=ro", uri=True)
    try:
        return Counter(dict(conn.execute("SELECT local_event_id, count(*) FROM events GROUP BY local_event_id")))
    finally:
        conn.close()


def sync_and_check(db: str | Path, lids: set[str], base_url: str, server_db: str | Path, entity: str,
                   password: str, *, batch_size: int = 500, complete: bool = True) -> dict[str, Any]:
    """The final upload, then the server's counts. ``complete``: this upload sent every event
    (False after uploaders were cut: some events went up before)."""
    acknowledged = asyncio.run(upload(db, base_url, entity, password, batch_size=batch_size))
    return sync_figures(db, lids, server_db, acknowledged if complete else None)


def sync_figures(db: str | Path, lids: set[str], server_db: str | Path, acknowledged: int | None) -> dict[str, Any]:
    counts = server_counts(server_db)
    conn = sqlite3.connect(db)
    try:
        left = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
    problems = []
    if integrity != ["ok"]:
        problems.append(f"integrity_check after the sync: {integrity[:5]}")
    missing = [lid for lid in lids if counts.get(lid, 0) == 0]
    twice = [lid for lid, n in counts.items() if n > 1]
    extra = [lid for lid in counts if lid not in lids]
    if missing:
        problems.append(f"{len(missing)} event(s) not on the server: {missing[:3]}")
    if twice:
        problems.append(f"{len(twice)} event(s) stored more than once on the server: {twice[:3]}")
    if extra:
        problems.append(f"{len(extra)} unknown event(s) on the server: {extra[:3]}")
    if left:
        problems.append(f"{left} event(s) still in the outbox")
    if acknowledged is not None and acknowledged != len(lids):
        problems.append(f"{acknowledged} acknowledged for {len(lids)} events")
    return {"acknowledged": acknowledged, "integrity": integrity[0] if len(integrity) == 1 else integrity,
            "server_events": sum(counts.values()), "server_missing": len(missing),
            "server_duplicates": len(twice), "outbox_left": left, "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["zygote", "child"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--scans", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=0, help="stop after this many scans (0: until killed)")
    parser.add_argument("--passback-window", type=float, default=None, help="seconds (default: the Policy's)")
    args = parser.parse_args()
    if args.role == "zygote":
        zygote(args.db, args.scans, args.passback_window)
    else:
        child_stream(args.db, args.scans, args.seed, args.count, args.passback_window)


if __name__ == "__main__":
    main()
