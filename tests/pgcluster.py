"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

``initdb`` into a temporary directory, ``pg_ctl start`` on 127.0.0.1 and a free port (and a unix
socket in the same directory), trust authentication for the cluster's own superuser ``mtb``,
``pg_ctl stop`` at the end. PostgreSQL refuses to run as root: as root, the cluster runs as an
unprivileged user (``--user``, default ``postgres``, which the Debian packages create).

::

    python -m tests.pgcluster start --dir DIR [--user postgres] [--durable]   # prints the URL
    python -m tests.pgcluster stop --dir DIR

``.ci/run`` uses it; the server tests start one themselves when PostgreSQL is installed and
``MTB_TEST_POSTGRES`` names no server (see ``tests/server/conftest.py``).
"""
from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUPERUSER = "mtb"
URL_FILE = "url"


def find_bin() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl``: on the PATH, else the newest Debian install."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name)
                      if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One cluster in ``directory``; ``url`` is its ``postgres`` database as the superuser."""

    def __init__(self, directory: Path, bindir: Path, user: str | None = None):
        self.directory = directory
        self.bindir = bindir
        self.user = user  # run as this OS user (needed when we are root)
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        kwargs: dict[str, object] = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        out = subprocess.run([str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True, timeout=120,
                             cwd=self.directory, **kwargs)  # type: ignore[call-overload]
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")

    def start(self, *, durable: bool = False, max_connections: int = 400) -> "Cluster":
        """``durable=False`` (tests): no fsync, which a throwaway cluster does not need."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        data = self.directory / "data"
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8",
                  "--no-sync")
        options = [f"-c max_connections={max_connections}", f"-c unix_socket_directories={self.directory}",
                   "-c listen_addresses=127.0.0.1", "-c shared_buffers=256MB"]
        if not durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        for _attempt in range(5):  # a free port can be taken between our probe and the server's bind
            self.port = _free_port()
            try:
                self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(self.directory / "log"),
                          "-o", " ".join([*options, f"-c port={self.port}"]))
                break
            except RuntimeError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"PostgreSQL did not start; see {self.directory / 'log'}")
        (self.directory / URL_FILE).write_text(self.url + "\n")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.directory / "data"))


def default_user() -> str | None:
    """None when we may run PostgreSQL ourselves; else the unprivileged user to run it as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def start_temporary(*, durable: bool = False) -> Cluster:
    """A cluster in a fresh temporary directory (raises RuntimeError when it cannot start)."""
    bindir = find_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb/pg_ctl on the PATH or in /usr/lib/postgresql)")
    user = default_user()
    if os.geteuid() == 0 and user is None:
        raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL as")
    directory = Path(tempfile.mkdtemp(prefix="mtb-pg-"))
    os.chmod(directory, 0o755)
    return Cluster(directory / "cluster", bindir, user).start(durable=durable)


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m tests.pgcluster")
    top.add_argument("action", choices=("start", "stop"))
    top.add_argument("--dir", type=Path, required=True)
    top.add_argument("--user", default=None, help="OS user to run as (default: postgres when root)")
    top.add_argument("--durable", action="store_true", help="keep fsync on (benchmarks)")
    args = top.parse_args(argv)
    bindir = find_bin()
    if bindir is None:
        print("error: PostgreSQL is not installed", file=sys.stderr)
        return 1
    user = args.user or default_user()
    if args.action == "stop" and os.geteuid() == 0 and args.dir.exists():
        user = pwd.getpwuid(args.dir.stat().st_uid).pw_name  # whoever started it owns it
    cluster = Cluster(args.dir, bindir, user)
    if args.action == "start":
        print(cluster.start(durable=args.durable).url)
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
