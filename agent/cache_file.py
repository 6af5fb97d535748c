"""The cache file itself: one process per file, created private, checked before the agent says
READY, and a damaged file moved aside (never deleted) with what can still be read of it.

A validator whose cache cannot record must not look ready: every scan would then end in
"Please try again" while the watchdog keeps pinging. So opening a cache for writing checks it
(schema version, ``PRAGMA quick_check``, a test write); a damaged file gets ``REINDEX`` and, if
that cannot save it, is renamed ``<name>.damaged-<time>`` beside a new one (rebuilt by the next
sync), into which its readable outbox and usage rows are copied. A file that cannot be written
for a reason outside it (read-only, disk full, failing) is not touched: the agent stops with an
error that names the file and the fix.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtb.timeutil import format_basic, utcnow

log = logging.getLogger(__name__)

CHECK_COMMAND = "python -m agent cache check"
PRIVATE = 0o600

# SQLite primary result codes (sqlite3.h) that say the file itself is damaged ...
_DAMAGED = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}
# ... and the fix an operator needs for the others.
_FIXES = {
    3: "check the file's owner and mode (the agent's user, 600)",  # SQLITE_PERM
    5: "another process holds it; stop it",  # SQLITE_BUSY
    8: "the file or its file system is read-only: fix the permissions (the agent's user, mode 600) or the mount",
    10: "the disk may be full or failing: free space or replace the medium",  # SQLITE_IOERR
    13: "the disk is full: free space",  # SQLITE_FULL
    14: "check that the directory exists and the agent may write in it",  # SQLITE_CANTOPEN
}


class CacheError(Exception):
    """A cache the agent cannot use as it is. The message names the file and the fix."""


class CacheInUse(CacheError):
    pass


def is_damage(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED


def explain(exc: sqlite3.Error, path: Path) -> CacheError:
    """An SQLite error as an operator needs it: what, which file, what to do."""
    fix = _FIXES.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
    then = f"{fix}, then run `{CHECK_COMMAND}`" if fix else f"run `{CHECK_COMMAND}`"
    return CacheError(f"{exc}: {path}; {then}")


def sidecars(path: Path) -> list[Path]:
    """The database file and SQLite's WAL and shared-memory files beside it."""
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


class ProcessLock:
    """An exclusive lock on ``<cache>.lock`` for the life of one Cache object.

    Two writers on one cache each decided from a history that lacked the other's scans (each
    accepted the same tickets); the second gets a clear error instead. The lock file holds the
    holder's pid, for that error. ``flock`` is released by the kernel when the holder dies.
    """

    def __init__(self, cache_path: Path) -> None:
        self.path = cache_path.with_name(cache_path.name + ".lock")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(self._fd)
            raise CacheInUse(f"cache {cache_path} is in use by another process (pid {holder}): one agent or "
                             "CLI writer per cache; stop it, or use `status` / `outbox list`, which only read") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


SQLITE_MAGIC = b"SQLite format 3\x00"


def inspect_file(path: Path) -> str | None:
    """Whether the file may be opened as this device's cache; why it is damaged, if it is.

    A missing directory is an error (a typo in ``--db`` must not grow a new cache somewhere); a
    missing file is fine (it is created); a zero-length file is damaged (SQLite would take it for
    a new, empty cache and the outbox it held would be gone without a word); a file that is not an
    SQLite database is refused and never touched (``--db README.md`` must not be "repaired").
    """
    if not path.parent.is_dir():
        raise CacheError(f"no directory {path.parent} for the cache {path}: create it, or fix the path "
                         "(--db, or db in the config)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"cannot read the cache {path}: {exc.strerror}; check its owner and mode "
                         f"(the agent's user, 600), then run `{CHECK_COMMAND}`") from exc
    if not head:
        return "the cache file is empty (0 bytes)"
    if head != SQLITE_MAGIC:
        raise CacheError(f"{path} is not an SQLite database: check the path (--db, or db in the config); "
                         "a cache whose first page is destroyed must be moved aside by hand")
    return None


def create_private(path: Path) -> None:
    """A new cache file, readable by its owner only (SQLite gives its WAL the same mode)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        pass


def make_private(path: Path) -> None:
    """The cache and its WAL are the device's alone; modes are only ever narrowed (a read-only file
    stays read-only)."""
    for file in sidecars(path):
        try:
            mode = file.stat().st_mode & 0o777
            if mode & 0o077:
                file.chmod(mode & ~0o077)
                log.warning("cache file %s was open to others (mode %o); now %o", file, mode, mode & ~0o077)
        except FileNotFoundError:
            pass


def quick_check(conn: sqlite3.Connection, *, thorough: bool = False) -> str | None:
    """``PRAGMA quick_check`` (at every start: the structure of every page), or with ``thorough``
    ``PRAGMA integrity_check`` (``cache check``: also that each index says what its table holds,
    which a page swapped for another passes unseen otherwise). None when sound, else what SQLite found."""
    try:
        rows = conn.execute(f"PRAGMA {'integrity_check' if thorough else 'quick_check'}").fetchall()
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return str(exc)
    found = "; ".join(line for r in rows for line in str(r[0]).splitlines() if not line.startswith("***"))
    return None if found == "ok" else found[:500]


def reindex(conn: sqlite3.Connection, *, thorough: bool = False) -> bool:
    """Rebuild every index from its table: mends an index whose pages read but say the wrong thing."""
    try:
        conn.execute("REINDEX")
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise
        return False
    return quick_check(conn, thorough=thorough) is None


def move_aside(path: Path) -> Path:
    """Rename the file (and its WAL, which may hold committed events) out of the way; never delete."""
    stamp = format_basic(utcnow())
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for old, new in zip(sidecars(path), sidecars(aside)):
        if old.exists():
            old.rename(new)
    return aside


@dataclass
class Salvage:
    """What could be read from a file that was moved aside."""

    outbox: list[tuple[Any, ...]]
    usage: list[tuple[Any, ...]]
    unreadable: int = 0  # outbox rows read but not usable (the body is not the event it claims to be)


_OUTBOX_COLUMNS = "seq, local_event_id, event_type, body, created_at, attempts, parked, last_error"
_USAGE_COLUMNS = "id, ticket_id, time, epoch, event_type, result, device_id, stop_area, zone, lat, long, boot_id, monotonic"


def _rows_both_ways(conn: sqlite3.Connection, table: str, columns: str, key: str) -> Iterator[tuple[Any, ...]]:
    """Every row that reads, in key order: forwards until a damaged page, then backwards from the
    end until one, so the rows on both sides of a damaged page are found."""
    seen: set[Any] = set()
    for order in ("ASC", "DESC"):
        try:
            for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key} {order}"):
                if row[0] in seen:
                    break  # the backward pass has met the forward one
                seen.add(row[0])
                yield row
        except sqlite3.DatabaseError as exc:
            log.warning("reading %s from the damaged cache stopped: %s", table, exc)


def _usable_event(row: tuple[Any, ...]) -> bool:
    try:
        body = json.loads(row[3])
    except (TypeError, ValueError):
        return False
    return isinstance(body, dict) and body.get("localEventId") == row[1] and body.get("eventType") == row[2]


def salvage(aside: Path) -> Salvage:
    """Read what can be read of the outbox and the usage history of a moved-aside file."""
    found = Salvage([], [])
    try:
        conn = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.warning("cannot open the damaged cache %s to salvage it: %s", aside, exc)
        return found
    try:
        for row in _rows_both_ways(conn, "outbox", _OUTBOX_COLUMNS, "seq"):
            if _usable_event(row):
                found.outbox.append(row)
            else:
                found.unreadable += 1
        found.usage = list(_rows_both_ways(conn, "usage", _USAGE_COLUMNS, "id"))
    finally:
        conn.close()
    found.outbox.sort(key=lambda r: r[0])
    found.usage.sort(key=lambda r: r[0])
    return found
