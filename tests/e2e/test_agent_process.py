"""``python -m agent run`` as systemd runs it: a real process, a serial reader on a pty,
sd_notify over a real socket, SIGTERM with nothing lost."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mtb
from mtb import keys, signer
from agent.cache import Cache
from mtb.timeutil import utcnow

from ..conftest import ticket

ROOT = Path(__file__).resolve().parents[2]


def outbox_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def test_sigterm_stops_the_agent_with_nothing_lost(tmp_path):
    key = keys.generate_es256_key()
    db = tmp_path / "cache.db"
    cache = Cache(db)
    cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(key, "1234:k1")]))
    cache.close()
    now = utcnow()
    barcodes = [mtb.wrap_transport(signer.mint(key, pid=1234, kid="1234:k1", tickets=[
        ticket(f"T{i}", valid_from=now, valid_until=now.replace(year=now.year + 1))]), "zlib+base64url")
        for i in range(5)]

    master, slave = os.openpty()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify_path = str(tmp_path / "notify.sock")
    notify.bind(notify_path)
    notify.settimeout(20)
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "gate-1"\ndb = "{db}"\n[reader]\nkind = "serial"\nurl = "{os.ttyname(slave)}"\n'
                      'framing = "line"\n[feedback]\nkind = "console"\n')
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                             env=dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=notify_path,
                                      WATCHDOG_USEC="2000000"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages = [notify.recv(100).decode()]
        while messages[-1] != "READY=1":  # the watchdog may ping before READY
            messages.append(notify.recv(100).decode())
        for barcode in barcodes:
            os.write(master, barcode.encode() + b"\r\n")
        deadline = time.monotonic() + 20
        while outbox_count(db) < len(barcodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox_count(db) == len(barcodes)
        agent.send_signal(signal.SIGTERM)
        out, err = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
        os.close(master)
        os.close(slave)
    assert agent.returncode == 0, err
    while True:
        try:
            messages.append(notify.recv(100).decode())
        except (socket.timeout, BlockingIOError):
            break
        if messages[-1] == "STOPPING=1":
            break
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    assert out.count("[GREEN]") == len(barcodes), out
    assert "Traceback" not in err
    assert outbox_count(db) == len(barcodes)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
