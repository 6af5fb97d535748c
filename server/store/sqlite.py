"""The SQLite backend: the embedded default, one file.

One writing ``sqlite3`` connection in WAL mode (``synchronous=NORMAL``), guarded by a lock, and
a read-only connection for each thread of the store runner that reads: WAL lets readers go on
while the writer works, so a long write transaction (a B2B HR sync replacing a roster of tens
of thousands) no longer holds every device's deny-list read behind it; writes still wait their
turn (SQLite has one writer). As on PostgreSQL, :meth:`SqliteDatabase.query` reads what is
committed, never a transaction's own uncommitted rows (those are read through the transaction).
Other processes (``python -m server credentials add`` while the server runs) share the file
through WAL and ``busy_timeout``. Every write transaction takes the write lock up front
(``BEGIN IMMEDIATE``), so ids come out in commit order.

A COMMIT can fail and leave the transaction open (a deferred constraint, a full disk, an I/O
error): :meth:`SqliteDatabase.transaction` then rolls back, so the connection is never left
inside a dead transaction that would swallow every later write.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .database import Row


class SqliteTx:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._db.executemany(sql, rows).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, params).fetchall()

    def returning(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Row | None]:
        return [self._db.execute(sql, row).fetchone() for row in rows]

    def claim_rows(self, sql: str, params: Sequence[Any] = (), *, of: str | None = None) -> list[Row]:
        """A plain read: ``BEGIN IMMEDIATE`` holds the one write lock, so no other transaction
        holds (or can claim) any row until this one ends."""
        return self.query(sql, params)

    def serialize(self, name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the one write lock."""

    def share(self, name: str) -> None:
        """Nothing to do: writers commit one at a time, in id order."""

    def notify(self, channel: str) -> None:
        """Nothing to send: other processes on the file poll (see :meth:`SqliteDatabase.listen`)."""


class SqliteDatabase:
    dialect = "sqlite"
    commits_in_id_order = True

    def __init__(self, path: str | Path, *, concurrency: int = 8):
        self.path = str(path)
        self.concurrency = concurrency  # store calls at once: reads side by side, writes one at a time
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        # an in-memory database is one connection's alone: it reads through the writer
        self._own_readers = self._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False  # then no thread opens a reader again

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[SqliteTx]:
        """(``durable`` changes nothing here: WAL with synchronous=NORMAL already commits
        without waiting for the disk.)"""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteTx(self._db)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """What is committed now, on this thread's read-only connection (it waits for no writer)."""
        if not self._own_readers:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        return self._reader().execute(sql, params).fetchall()

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            with self._readers_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                reader.row_factory = sqlite3.Row
                reader.execute("PRAGMA busy_timeout = 5000")
                reader.execute("PRAGMA query_only = ON")
                self._readers.append(reader)
            self._local.reader = reader
        return reader

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """SQLite cannot tell other processes: None, so the caller polls."""
        return None

    def close(self) -> None:
        """After the store runner's threads are done (:meth:`StoreRunner.close`)."""
        with self._readers_lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        with self._lock:
            self._db.close()
