"""The seam between the store's SQL and a database: a :class:`Database` gives transactions
and reads; a backend module (:mod:`server.store.sqlite`, :mod:`server.store.postgres`) implements it.

The queries (:mod:`server.store.core`, and each API surface's own store module) are written once,
in the SQL both SQLite (3.35+) and PostgreSQL speak: ``?`` placeholders (a backend rewrites
them if its driver wants another style), ``ON CONFLICT``, ``RETURNING``, ``AS`` names on every
computed column (rows are read by name). Times are stored as ISO 8601 extended UTC text with
milliseconds (fixed width, so text order is time order) and JSON as text: the stored form is
the wire form.

Schema changes are numbered, append-only migrations, one directory per backend
(``migrations/<dialect>/NNNN_name.sql``), applied in order at open inside one transaction
each, and recorded in ``schema_migrations``; a database newer than the code is refused.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

Row = Any  # a mapping by column name (sqlite3.Row, or a dict)


class Tx(Protocol):
    """One open transaction. Everything done through it commits together or not at all."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def returning(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Row | None]:
        """Run an ``INSERT ... RETURNING`` once per parameter row; the returned row for each
        (None where ``ON CONFLICT DO NOTHING`` skipped it), in order."""

    def claim_rows(self, sql: str, params: Sequence[Any] = (), *, of: str | None = None) -> list[Row]:
        """A ``SELECT`` of rows to claim (a work queue shared by several processes): the rows
        read stay locked until this transaction ends, and rows another transaction holds are
        skipped, not waited for. ``of``: the table (alias) whose rows are locked in a join.
        The caller marks what it read as claimed (a lease: who, until when) in the same
        transaction, so the claim outlives it and a crashed claimer's lease runs out."""

    def serialize(self, name: str) -> None:
        """Hold a lock named ``name`` until this transaction ends, so that transactions that
        allocate ids of one sequence commit in id order (readers of a feed by id never skip
        an id that commits late)."""

    def share(self, name: str) -> None:
        """Hold lock ``name`` shared until this transaction ends: writers that may commit out of
        id order hold it together; a horizon read (``serialize`` then the largest id) waits for
        them, so every id at or below it has committed or never will."""

    def notify(self, channel: str) -> None:
        """Tell the processes listening on ``channel`` (:meth:`Database.listen`) when this
        transaction commits."""


class Database(Protocol):
    dialect: str  # "sqlite" or "postgresql": the migrations directory
    concurrency: int  # how many store calls may run at once (threads of the store runner)
    commits_in_id_order: bool  # one writer at a time (SQLite): what is visible has no id still in flight

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[Tx]:
        """``durable=False``: the commit need not wait for the disk (state that may lose its
        last moments in a crash, such as rate-limit windows)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any explicit transaction (one statement, its own snapshot)."""

    def listen(self, channel: str, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` (from another thread) whenever a transaction that notified
        ``channel`` commits, in any process; returns a function that stops listening, or None
        when the backend cannot tell other processes (the caller polls instead)."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationError(Exception):
    pass


_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations(dialect: str) -> list[Migration]:
    """The numbered migrations of a backend, in order; numbers must run 1, 2, 3 ... with no gap."""
    folder = resources.files("server.store") / "migrations" / dialect
    found = []
    for item in folder.iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), item.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"{dialect} migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def statements(sql: str) -> Iterator[str]:
    """The statements of a migration file (split on ';' at the end of a line; no procedures)."""
    for chunk in re.split(r";\s*(?:--[^\n]*)?\n", sql + "\n"):
        text = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if text:
            yield text


def pending(applied: int, available: list[Migration], dialect: str) -> list[Migration]:
    newest = available[-1].version if available else 0
    if applied > newest:
        raise MigrationError(f"the {dialect} database is at schema version {applied}, newer than this "
                             f"server knows ({newest}): run the newer server, or restore a backup")
    return [m for m in available if m.version > applied]


def migrate(db: Database, *, now: str) -> int:
    """Bring ``db`` to the newest schema; returns its version. Each migration and its record
    in ``schema_migrations`` commit together, so a crash leaves the schema at a known version."""
    available = migrations(db.dialect)
    with db.transaction() as tx:
        tx.serialize("schema_migrations")  # first: two processes starting at once create it once
        tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    applied = db.query("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")[0]["v"]
    for migration in pending(applied, available, db.dialect):
        with db.transaction() as tx:
            tx.serialize("schema_migrations")
            if tx.query("SELECT 1 AS one FROM schema_migrations WHERE version = ?", (migration.version,)):
                continue  # another process applied it first
            for statement in statements(migration.sql):
                tx.execute(statement)
            tx.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                       (migration.version, migration.name, now))
    return available[-1].version if available else 0
