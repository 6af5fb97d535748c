"""The SQLite backend: the embedded default, one file.

One ``sqlite3`` connection in WAL mode (``synchronous=NORMAL``), guarded by a lock; the store
runner calls it from one dedicated thread (SQLite has one writer anyway), so the event loop
never waits on a query. Other processes (``python -m server credentials add`` while the server
runs) share the file through WAL and ``busy_timeout``. Every write transaction takes the write
lock up front (``BEGIN IMMEDIATE``), so ids come out in commit order.

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
    concurrency = 1
    commits_in_id_order = True

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")

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
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def listen(self, channel: str, callback: Callable[[], None]) -> None:
        """SQLite cannot tell other processes: None, so the caller polls."""
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
