"""``python -m server serve --workers N``: N server processes behind one port.

Python runs one core per process, so a server that uses a machine's cores runs several. The
supervisor (this module) starts N workers, each a fresh ``python -m server serve ... --worker``
that binds the same address with ``SO_REUSEPORT``; the kernel spreads new connections over
them. Everything the workers must agree on lives in the database (use PostgreSQL): rate-limit
windows and blocks and login failures (:class:`server.auth.ratelimit.DatabaseLimiter`), deny-list
ids (one sequence, committed in id order), event de-duplication and manifest reuse (unique
constraints); revocations reach every worker's long-polls through the database too.

The supervisor:

- migrates the database once, before any worker starts;
- holds the port with a bound (not listening) ``SO_REUSEPORT`` socket, so ``--port 0`` gives
  every worker the same port and a restarted worker gets it back;
- gives the workers a fresh ``PROMETHEUS_MULTIPROC_DIR``, so ``/metrics`` from any worker adds
  up all of them (:mod:`server.ops.metrics`), and removes it at the end;
- restarts a worker that dies (a second later), and gives up (exit 1) after
  :data:`MAX_RESTARTS` deaths in :data:`RESTART_WINDOW` seconds;
- on SIGTERM or SIGINT stops the workers (SIGTERM, then SIGKILL after :data:`STOP_SECONDS`).

A connection already queued at a worker that dies is reset (``SO_REUSEPORT`` gives each worker
its own accept queue); clients retry, as devices do.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from .ops.metrics import MULTIPROC_ENV
from .store import open_store

log = logging.getLogger("server.workers")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STOP_SECONDS = 10.0
POLL_SECONDS = 0.2


def hold_port(host: str, port: int) -> socket.socket:
    """A bound, not listening socket on (host, port) with SO_REUSEPORT: the port for every
    worker (0 picks a free one), never given a connection itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class Supervisor:
    def __init__(self, worker_args: Sequence[str], count: int, database: str):
        self.worker_args = list(worker_args)  # `serve` arguments for a worker, --port included
        self.count = count
        self.database = database
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * count
        self.deaths: deque[float] = deque()
        self.stopping = False

    def _start(self, slot: int, env: dict[str, str]) -> None:
        self.workers[slot] = subprocess.Popen([sys.executable, "-m", "server", "serve", *self.worker_args, "--worker"],
                                              env=env)
        log.info("worker %d started (pid %d)", slot, self.workers[slot].pid)  # type: ignore[union-attr]

    def _stop(self, *_args: object) -> None:
        self.stopping = True

    def run(self) -> int:
        open_store(self.database, pool_size=1).close()  # migrate once, before the workers race to
        metrics_dir = tempfile.mkdtemp(prefix="mtb-server-metrics-")
        env = {**os.environ, MULTIPROC_ENV: metrics_dir}
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            for slot in range(self.count):
                self._start(slot, env)
            return self._watch(env)
        finally:
            self._terminate()
            shutil.rmtree(metrics_dir, ignore_errors=True)

    def _watch(self, env: dict[str, str]) -> int:
        while not self.stopping:
            time.sleep(POLL_SECONDS)
            for slot, proc in enumerate(self.workers):
                if proc is None or proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                self.deaths.append(now)
                while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
                    self.deaths.popleft()
                log.error("worker %d (pid %d) exited with %s", slot, proc.pid, proc.returncode)
                if len(self.deaths) > MAX_RESTARTS:
                    log.error("%d worker deaths within %g s: giving up", len(self.deaths), RESTART_WINDOW)
                    return 1
                time.sleep(1.0)
                self._start(slot, env)
        return 0

    def _terminate(self) -> None:
        running = [p for p in self.workers if p is not None and p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def supervise(data: Path, host: str, port: int, count: int, database: str, passthrough: Sequence[str]) -> int:
    """Serve ``data`` on (host, port) with ``count`` workers; returns the exit status."""
    held = hold_port(host, port)
    try:
        port = held.getsockname()[1]
        print(f"serving on {host}:{port} with {count} workers (pid {os.getpid()} supervises)", flush=True)
        args = ["--data", str(data), "--host", host, "--port", str(port), "--database", database, *passthrough]
        return Supervisor(args, count, database).run()
    finally:
        held.close()
