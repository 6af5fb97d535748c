"""The PostgreSQL backend: for a fleet, and for several server processes on one database.

psycopg 3 with its connection pool, synchronous: the store runner calls the store from as many
threads as the pool has connections, so the handlers, the SQL and the transaction rules are the
same code for both backends (an async driver would need a second, async copy of every store
method for no gain: the work per call is one or two round trips on a local network, and the
threads release the GIL while they wait).

- Placeholders: the portable SQL says ``?``; psycopg wants ``%s`` (and a literal ``%`` doubled).
  :func:`pg_sql` rewrites a statement once and remembers it.
- Transactions: READ COMMITTED (PostgreSQL's default). A compare-and-set ``UPDATE ... WHERE
  state = ?`` re-checks its condition after waiting for a concurrent writer, and ``INSERT ... ON
  CONFLICT DO NOTHING`` waits for a concurrent insert of the same key to commit or roll back,
  so the store's rules hold across processes without SERIALIZABLE retries.
- ``claim_rows``: ``SELECT ... FOR UPDATE SKIP LOCKED``, so several processes take work from
  one queue without waiting for each other or taking the same row.
- ``serialize(name)``: a transaction-level advisory lock, released at COMMIT after the commit is
  visible; transactions that allocate ids of one sequence under it commit in id order, so a
  reader by high-water mark never skips an id that commits late.
- ``share(name)`` / :meth:`PostgresDatabase.horizon`: writers that may commit out of id order
  (event ingest, in parallel) hold the lock shared; the horizon takes it exclusively for an
  instant, after every writer that holds it has finished, and reads the largest id then: every
  id at or below it is committed or never will be.

Credentials: put no password in the URL on a command line; libpq reads ``PGPASSWORD``,
``PGPASSFILE`` (``~/.pgpass``) and the ``PGSSL*`` variables as usual.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .database import Row
from .records import DatabaseUnavailable

log = logging.getLogger("server.store")
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """``?`` -> ``%s`` outside quoted literals; every ``%`` doubled (psycopg reads them everywhere)."""
    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        return "%s" if text == "?" else text.replace("%", "%%")
    return _TOKENS.sub(token, sql)


def lock_key(name: str) -> int:
    """A stable 64-bit advisory-lock key for a name (the same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class PostgresTx:
    def __init__(self, conn: psycopg.Connection[Any]):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(pg_sql(sql), params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        with self._conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)
            return cur.rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(pg_sql(sql), params).fetchall()

    def returning(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Row | None]:
        if not rows:
            return []
        out: list[Row | None] = []
        with self._conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows, returning=True)  # one pipeline, one result set per row
            while True:
                out.append(cur.fetchone())
                if not cur.nextset():
                    break
        return out

    def claim_rows(self, sql: str, params: Sequence[Any] = (), *, of: str | None = None) -> list[Row]:
        """``FOR UPDATE [OF of] SKIP LOCKED``: rows another transaction is claiming are passed over."""
        return self.query(f"{sql} FOR UPDATE{f' OF {of}' if of else ''} SKIP LOCKED", params)

    def serialize(self, name: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(name),))

    def share(self, name: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (lock_key(name),))

    def notify(self, channel: str) -> None:
        self._conn.execute("SELECT pg_notify(%s, '')", (channel,))


class PostgresDatabase:
    dialect = "postgresql"
    commits_in_id_order = False

    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: int = 10):
        self.url = url
        self.concurrency = pool_size
        kwargs = {"row_factory": dict_row, "autocommit": True, "application_name": "mtb-server"}
        try:  # one connection first: its error says why (the pool would retry quietly until a timeout)
            psycopg.connect(url, connect_timeout=connect_timeout).close()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=False, name="store", kwargs=kwargs)
        self.pool.open(wait=True, timeout=connect_timeout * 3)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[PostgresTx]:
        """BEGIN ... COMMIT on a pooled connection; any exception (a failed COMMIT included)
        rolls back, and the pool checks the connection before handing it out again.
        ``durable=False``: the COMMIT does not wait for the WAL to reach the disk."""
        with self.pool.connection() as conn, conn.transaction():
            if not durable:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield PostgresTx(conn)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.pool.connection() as conn:
            return conn.execute(pg_sql(sql), params).fetchall()

    def listen(self, channel: str, callback: Callable[[], None]) -> Callable[[], None]:
        """LISTEN on a connection of its own, in a thread; reconnects after a failure (the
        caller's slow poll covers the gap). Returns the function that stops it."""
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
                        conn.execute(f'LISTEN "{channel}"')
                        callback()  # anything committed while we were not listening
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=1.0):
                                callback()
                except psycopg.Error as exc:
                    log.warning("LISTEN %s: %s; reconnecting", channel, type(exc).__name__)
                    stop.wait(1.0)

        thread = threading.Thread(target=run, name=f"listen-{channel}", daemon=True)
        thread.start()

        def close() -> None:
            stop.set()
            thread.join(5)
        return close

    def close(self) -> None:
        self.pool.close()
