"""A cache that tells the truth (issue 10.3), with real broken files: read-only, an index page
overwritten, a table page overwritten, a full disk, a zero-length file; one process per cache;
private files; errors that name the file and the fix."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from agent.cache import Cache
from agent.cache_file import CacheError, CacheInUse
from agent.config import ConfigError, read_credentials
from mtb.scan_context import Context, Validator
from agent.engine import Engine
from agent.messages import OUT_OF_SERVICE
from agent.runtime import Agent
from hardware import SimulatedFeedback, SimulatedReader
from mtb import keys, signer

from .conftest import NOW, ticket

ROOT = Path(__file__).resolve().parents[1]
FIX = "run `python -m agent cache check`"
CTX = Context(time=NOW, validator=Validator("gate-1"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def agent_cli(*argv: str, preexec=None, drop_root: bool = False, env: dict | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m agent ...`` as its own process; ``drop_root``: without root's power to write
    any file (as the agent's own user would run), so a read-only file is read-only."""
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"] if drop_root and os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-m", "agent", *argv], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


def tid(i: int) -> str:
    return f"TICKET-{i:04d}-" + "x" * 60  # long ids: the usage index spans several pages


def filled_cache(path: Path, issuer_key, scans: int = 300) -> list[str]:
    """A cache with enough history and queued events to span many pages; their local event ids."""
    with Cache(path, durability="normal") as cache:
        cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")]))
        engine = Engine(cache)
        try:
            ids = []
            for i in range(scans):
                raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(tid(i))])
                ids.append(engine.validate_sync(raw, dataclasses.replace(CTX, time=NOW + timedelta(seconds=i))).events[0]["localEventId"])
        finally:
            engine.close()
    return ids


def pages_of(path: Path, name: str) -> list[int]:
    """The leaf pages of a table or index (SQLite's dbstat), after a checkpoint put them in the file."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT pageno FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY pageno",
                            (name,)).fetchall()
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert len(rows) >= 4, f"{name} is too small to damage in the middle"
    return [r[0] * size - size for r in rows]  # byte offsets


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def asides(directory: Path) -> list[Path]:
    """Moved-aside cache files (their WAL and shared-memory files beside them not counted)."""
    return [p for p in directory.glob("device.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]


def usage_index(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='usage'").fetchone()[0]


# --- damaged files --------------------------------------------------------------------------------

def test_an_index_page_overwritten_is_an_error_naming_the_file_and_the_fix(tmp_path, issuer_key):
    path = tmp_path / "device.db"
    filled_cache(path, issuer_key)
    overwrite(path, pages_of(path, usage_index(path))[1], os.urandom(4096))
    with pytest.raises(CacheError) as refused:
        Cache(path)  # a CLI writer does not repair behind the operator's back
    assert str(refused.value).startswith("the cache is damaged (Page ") and "\n" not in str(refused.value)
    assert str(path) in str(refused.value) and FIX in str(refused.value)


def test_an_index_page_overwritten_is_moved_aside_and_every_queued_event_re_queued(tmp_path, issuer_key):
    path = tmp_path / "device.db"
    ids = filled_cache(path, issuer_key)
    overwrite(path, pages_of(path, usage_index(path))[1], os.urandom(4096))
    done = agent_cli("cache", "check", "--db", str(path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    [repair] = report["repairs"]
    assert "moved aside to device.db.damaged-" in repair and f"{len(ids)} queued event(s) re-queued" in repair
    assert report["outbox"] == len(ids) and report["alarms"]["cache"]["text"] == repair
    [aside] = asides(tmp_path)
    assert aside.stat().st_size > 0  # kept, never deleted
    with Cache(path) as cache:
        assert [e.local_event_id for e in cache.outbox()] == ids  # in their order
        assert cache.last_uses(tid(7), "gate-1")[0].ticket_id == tid(7)  # the history came along
        assert cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert cache.keystore().issuer_keys == {}  # keys and lists come again from the server
    status = agent_cli("status", "--db", str(path))
    assert json.loads(status.stdout)["alarms"]["cache"]["text"] == repair


def test_an_index_page_whose_header_is_overwritten_is_mended_by_reindex_at_start(tmp_path, issuer_key):
    path = tmp_path / "device.db"
    ids = filled_cache(path, issuer_key)
    overwrite(path, pages_of(path, usage_index(path))[1] + 3, b"\0\0")  # "no cells on this page"
    with Cache(path, repair=True) as cache:  # as the agent opens it at start
        [repair] = cache.repairs
        assert repair.startswith(f"cache {path} was damaged (") and repair.endswith("; repaired by REINDEX")
        assert cache.alarms()["cache"]["text"] == repair
        assert [e.local_event_id for e in cache.outbox()] == ids
        assert cache.last_uses(tid(123), "gate-1")[0] is not None  # the index finds every use again
        assert cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not asides(tmp_path)


def test_cache_check_finds_an_index_that_reads_well_but_lies(tmp_path, issuer_key):
    """Two index pages swapped: every page is sound, so quick_check passes; integrity_check does
    not, and REINDEX mends it (a passback lookup through such an index misses the earlier use)."""
    path = tmp_path / "device.db"
    filled_cache(path, issuer_key)
    leaves = pages_of(path, usage_index(path))
    with open(path, "rb") as handle:
        handle.seek(leaves[1])
        first = handle.read(4096)
        handle.seek(leaves[3])
        second = handle.read(4096)
    overwrite(path, leaves[1], second)
    overwrite(path, leaves[3], first)
    Cache(path).close()  # quick_check: the structure is sound
    done = agent_cli("cache", "check", "--db", str(path))
    assert done.returncode == 0, done.stderr
    [repair] = json.loads(done.stdout)["repairs"]
    assert "missing from index" in repair and repair.endswith("repaired by REINDEX")
    with Cache(path) as cache:
        assert cache.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_table_page_overwritten_keeps_the_events_on_both_sides_of_it(tmp_path, issuer_key):
    path = tmp_path / "device.db"
    ids = filled_cache(path, issuer_key)
    leaves = pages_of(path, "outbox")
    overwrite(path, leaves[len(leaves) // 2], os.urandom(4096))
    with Cache(path, repair=True) as cache:
        kept = [e.local_event_id for e in cache.outbox()]
    assert ids[0] == kept[0] and ids[-1] == kept[-1]  # before and after the damaged page
    assert set(kept) < set(ids) and len(kept) > len(ids) // 2
    assert kept == [i for i in ids if i in set(kept)]


def test_a_zero_length_cache_is_damage_not_a_new_cache(tmp_path):
    path = tmp_path / "device.db"
    path.write_bytes(b"")
    with pytest.raises(CacheError, match="empty"):
        Cache(path)
    with Cache(path, repair=True) as cache:
        assert "the cache file is empty (0 bytes)" in cache.alarms()["cache"]["text"]
        assert "0 queued event(s) re-queued" in cache.alarms()["cache"]["text"]
    [aside] = asides(tmp_path)
    assert aside.stat().st_size == 0


def test_a_file_that_is_no_cache_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    path.chmod(0o644)
    with pytest.raises(CacheError, match="not an SQLite database"):
        Cache(path, repair=True)
    assert path.read_text() == "my notes\n" and mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # not even a lock file


# --- read-only, full disk -------------------------------------------------------------------------

def config_for(tmp_path: Path, db: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "gate-1"\ndb = "{db}"\n[reader]\nkind = "simulated"\n'
                      '[feedback]\nkind = "simulated"\n')
    return config


def ready_sent(notify: socket.socket) -> bool:
    messages = []
    while True:
        try:
            messages.append(notify.recv(100).decode())
        except BlockingIOError:
            return "READY=1" in messages


@pytest.fixture()
def notify(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root needs setpriv to feel a mode")
def test_a_read_only_cache_stops_the_agent_before_ready_with_the_fix(tmp_path, issuer_key, notify):
    db = tmp_path / "device.db"
    filled_cache(db, issuer_key, scans=3)
    db.chmod(0o400)
    done = agent_cli("run", "--config", str(config_for(tmp_path, db)), drop_root=True,
                     env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: attempt to write a readonly database: ") and str(db) in last
    assert "read-only" in last and FIX in last
    assert not ready_sent(notify)
    assert mode(db) == 0o400  # read-only stays read-only: the operator decides


def test_a_full_disk_at_start_stops_the_agent_before_ready(tmp_path, issuer_key, notify):
    db = tmp_path / "device.db"
    filled_cache(db, issuer_key, scans=3)

    def no_room() -> None:  # every file may grow to 1 KiB: the WAL cannot take one page
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    done = agent_cli("run", "--config", str(config_for(tmp_path, db)), preexec=no_room,
                     env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert str(db) in last and "disk" in last and FIX in last
    assert not ready_sent(notify)


async def test_a_full_disk_while_running_goes_out_of_service_and_silences_the_watchdog(
        engine, issuer_key, tmp_path, monkeypatch, caplog):
    cache = engine.cache
    agent = Agent(engine=engine, reader=SimulatedReader(), feedback=SimulatedFeedback(), validator=Validator("g"),
                  max_failed_recordings=3)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "wd.sock"))
    notify.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "wd.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    watchdog = asyncio.create_task(agent._watchdog())
    try:
        loop = asyncio.get_running_loop()
        assert await asyncio.wait_for(loop.sock_recv(notify, 100), 10) == b"WATCHDOG=1"  # healthy: pinging
        pages = cache.conn.execute("PRAGMA page_count").fetchone()[0]
        cache.conn.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
        raw = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(valid_until=NOW + timedelta(days=999))])
        for _ in range(200):  # bounded: the free room in the last pages runs out within a few scans
            if agent.cannot_record:
                break
            await agent.handle_scan(raw + b"")
        assert agent.failed_recordings == 3
        assert (agent.feedback.last.colour, agent.feedback.last.text) == ("red", OUT_OF_SERVICE)
        assert "database or disk is full" in agent.alarms["recording"] and str(cache.path) in agent.alarms["recording"]
        assert FIX in agent.alarms["recording"]
        await wait_for_log(caplog, "no scan can be recorded; withholding the watchdog ping")
        while True:  # drain pings sent before the disk filled
            try:
                notify.recv(100)
            except BlockingIOError:
                break
        await wait_for_log(caplog, "no scan can be recorded; withholding the watchdog ping", times=3)
        with pytest.raises(BlockingIOError):
            notify.recv(100)  # silent: systemd restarts the agent, whose start check names the problem
        cache.conn.execute("PRAGMA max_page_count=1073741823")  # room again
        assert (await agent.handle_scan(raw)).event_result in (0, 8)
        assert "recording" not in agent.alarms and not agent.cannot_record
    finally:
        agent.stop.set()
        await watchdog
        notify.close()


async def wait_for_log(caplog, text: str, times: int = 1) -> None:
    for _ in range(500):  # bounded
        if caplog.text.count(text) >= times:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never logged {times}x: {text}")


# --- one process per cache ------------------------------------------------------------------------

def test_a_second_writer_in_the_same_process_is_refused(tmp_path):
    with Cache(tmp_path / "c.db"):
        with pytest.raises(CacheInUse, match=f"in use by another process \\(pid {os.getpid()}\\)"):
            Cache(tmp_path / "c.db")
    Cache(tmp_path / "c.db").close()  # released at close


def test_a_running_agent_keeps_cli_writers_out_but_not_readers(tmp_path):
    db = tmp_path / "c.db"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from agent.cache import Cache; "
                               f"c = Cache({str(db)!r}); print('open', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "open"
        denied = agent_cli("cache", "deny", "--ticket-id", "T1", "--expire", "2099-01-01T00:00:00Z", "--db", str(db))
        assert denied.returncode == 1
        assert denied.stderr == (f"error: cache {db} is in use by another process (pid {holder.pid}): one agent or "
                                 "CLI writer per cache; stop it, or use `status` / `outbox list`, which only read\n")
        assert agent_cli("status", "--db", str(db)).returncode == 0
        assert agent_cli("outbox", "list", "--db", str(db)).returncode == 0
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert agent_cli("cache", "deny", "--ticket-id", "T1", "--expire", "2099-01-01T00:00:00Z",
                     "--db", str(db)).returncode == 0


def test_passback_reads_and_the_recording_are_one_write_transaction(engine, issuer_key):
    statements: list[str] = []
    engine.cache.conn.set_trace_callback(statements.append)
    engine.validate_sync(signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()]), CTX)
    engine.cache.conn.set_trace_callback(None)
    begin = statements.index("BEGIN IMMEDIATE")
    reads = [i for i, s in enumerate(statements) if s.startswith("SELECT") and "FROM usage" in s]
    writes = [i for i, s in enumerate(statements) if s.startswith("INSERT INTO usage")]
    assert statements.count("BEGIN IMMEDIATE") == 1 and reads and writes
    assert begin < min(reads) < max(writes) < statements.index("COMMIT")


# --- files, paths, credentials --------------------------------------------------------------------

def test_cache_files_are_private_and_open_ones_are_narrowed(tmp_path):
    with Cache(tmp_path / "new.db") as cache:
        cache.set_meta("x", "y")
        for name in ("new.db", "new.db-wal", "new.db-shm", "new.db.lock"):
            assert mode(tmp_path / name) == 0o600, name
    old = tmp_path / "old.db"
    Cache(old).close()
    old.chmod(0o644)
    Cache(old).close()
    assert mode(old) == 0o600


def test_a_missing_cache_directory_is_an_error_not_created(tmp_path):
    db = tmp_path / "typo" / "c.db"
    with pytest.raises(CacheError, match="no directory"):
        Cache(db)
    done = agent_cli("cache", "deny", "--ticket-id", "T1", "--expire", "2099-01-01T00:00:00Z", "--db", str(db))
    assert done.returncode == 1 and done.stderr.startswith(f"error: no directory {db.parent} for the cache {db}")
    assert not db.parent.exists()


def test_status_on_a_path_with_no_cache_says_so_and_creates_nothing(tmp_path):
    db = tmp_path / "nothing.db"
    done = agent_cli("status", "--db", str(db))
    assert done.returncode == 1 and done.stderr.startswith(f"error: no cache at {db}")
    assert done.stderr.count("\n") == 1 and not list(tmp_path.iterdir())


def test_a_credentials_file_others_can_read_is_refused(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("gate-1:secret\n")
    credentials.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {credentials}"):
        read_credentials(credentials)
    credentials.chmod(0o600)
    assert read_credentials(credentials) == ("gate-1", "secret")


def test_the_agent_refuses_to_start_with_open_credentials(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.write_text("gate-1:secret\n")
    credentials.chmod(0o640)
    config = config_for(tmp_path, tmp_path / "c.db")
    config.write_text(config.read_text() + f'[server]\nproduction_url = "https://127.0.0.1:9/api/v1"\n'
                                           f'credentials_file = "{credentials}"\n')
    done = agent_cli("run", "--config", str(config))
    assert done.returncode == 1 and "open to others (mode 640)" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "c.db").exists()  # refused before the cache was touched
