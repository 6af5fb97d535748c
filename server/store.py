"""Storage behind one small interface (:class:`Store`), with :class:`SqliteStore` on one file.

All SQL lives here; handlers and services see records. Another database can take SQLite's
place by implementing :class:`Store`.

Concurrency: one ``sqlite3`` connection in WAL mode (``synchronous=NORMAL``), guarded by a
lock. The server calls the store through :class:`StoreRunner`, which runs every call on ONE
dedicated worker thread: calls are serialised (SQLite has one writer anyway), the event loop
is never blocked by a slow query, and a hop costs some tens of microseconds. Other processes
(``python -m server credentials add`` while the server runs) share the file through WAL and
``busy_timeout``. Writes that allocate ids take the write lock up front (``BEGIN IMMEDIATE``),
so the ids an ingest hands out are exact even with another process around.

Hot paths and their indices: events by ``(sub, local_event_id)`` UNIQUE (dedupe), events by
``(ticket_id, id)``, deny-list by its INTEGER PRIMARY KEY AUTOINCREMENT id (ids only grow,
never reused), tickets by ``(traveller_id, issued_at)``. An ingest batch is one transaction:
one SELECT for the already-known ``localEventId``s, one ``executemany`` INSERT.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mtb.timeutil import format_extended, parse_time

SCHEMA_VERSION = 1
T = TypeVar("T")


class StoreError(Exception):
    pass


class StateConflict(StoreError):
    """A compare-and-set on a ticket's state found another state."""


class DuplicateManifest(StoreError):
    """The manifest was already used to issue tickets."""


class DuplicateCredential(StoreError):
    pass


# --- records ----------------------------------------------------------------------------------

@dataclass
class Credential:
    entity_id: str
    role: str
    pid: int
    password_hash: str
    created_at: datetime


@dataclass
class TicketRecord:
    ticket_id: str
    pid: int
    bundle_id: str
    manifest_id: str
    settlement_id: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    fare: dict[str, Any]
    state: str
    payload: str  # base64url JSON (ticketPayload)
    mtb: str  # this ticket alone, zlib+base64url
    product_id: str | None = None
    category: str | None = None
    traveller_id: str | None = None
    traveller_name: str | None = None
    request_id: str | None = None
    booking_id: str | None = None
    refunded_amount: dict[str, Any] | None = None
    recovered_amount: dict[str, Any] | None = None
    recovered_from: str | None = None
    replaced_by: str | None = None
    updated_at: datetime | None = None


@dataclass
class BundleRecord:
    bundle_id: str
    pid: int
    manifest_id: str
    settlement_id: str
    mtb: str
    created_at: datetime
    ticket_ids: list[str] = field(default_factory=list)
    parent_id: str | None = None
    request_id: str | None = None


@dataclass
class NewEvent:
    local_event_id: str | None
    ticket_id: str
    event_time: datetime
    event_result: int | None
    body: dict[str, Any]


@dataclass
class EventRecord:
    event_id: int
    sub: str
    local_event_id: str | None
    ticket_id: str
    kind: str
    event_time: datetime
    event_result: int | None
    poster_pid: int | None
    received_at: datetime
    body: dict[str, Any]


@dataclass
class BlacklistEntry:
    expire: datetime
    ticket_id: str | None = None
    traveller_id: str | None = None
    token_id: str | None = None
    reason: str | None = None
    entry_id: int | None = None
    created_at: datetime | None = None


@dataclass
class TicketQuery:
    traveller_id: str
    now: datetime
    pid: int | None = None
    active: bool | None = None
    refundable: bool | None = None
    refunded: bool | None = None
    request_id: str | None = None
    sort_field: str = "issuedAt"
    sort_order: str = "desc"
    offset: int = 0
    limit: int = 100


# API sort field -> column. The only names that ever reach an ORDER BY.
TICKET_SORT_FIELDS = {"issuedAt": "issued_at", "validFrom": "valid_from", "validUntil": "valid_until",
                      "ticketId": "ticket_id"}
EVENT_SORT_FIELDS = {"eventId": "id", "time": "event_time", "receivedAt": "received_at"}
SORT_ORDERS = {"asc": "ASC", "desc": "DESC"}
USABLE_STATES = ("active", "frozen")  # states a refund/recover may start from


class Store(Protocol):
    def close(self) -> None: ...
    # credentials
    def add_credential(self, cred: Credential, *, replace: bool = False) -> None: ...
    def get_credential(self, entity_id: str) -> Credential | None: ...
    def list_credentials(self) -> list[Credential]: ...
    def remove_credential(self, entity_id: str) -> bool: ...
    # tickets and bundles
    def create_issue(self, bundle: BundleRecord, tickets: Sequence[TicketRecord], *, actor: str,
                     replaces: str | None = None) -> None: ...
    def find_issue(self, pid: int, request_id: str) -> BundleRecord | None: ...
    def get_ticket(self, ticket_id: str) -> TicketRecord | None: ...
    def list_tickets(self, query: TicketQuery) -> tuple[list[TicketRecord], int]: ...
    def transition(self, ticket_id: str, from_state: str, to_state: str, *, at: datetime, actor: str,
                   action: str, changes: dict[str, Any] | None = None,
                   blacklist: BlacklistEntry | None = None) -> int | None: ...
    def create_bundle(self, bundle: BundleRecord) -> None: ...
    def get_bundle(self, bundle_id: str) -> BundleRecord | None: ...
    # events
    def ingest_events(self, sub: str, poster_pid: int | None, kind: str, received_at: datetime,
                      events: Sequence[NewEvent]) -> list[tuple[int, bool]]: ...
    def get_event(self, event_id: int) -> EventRecord | None: ...
    def list_events(self, ticket_id: str, *, poster_pid: int | None = None, sort_field: str = "eventId",
                    sort_order: str = "asc", offset: int = 0, limit: int = 100) -> tuple[list[EventRecord], int]: ...
    def event_ids(self, ticket_id: str, limit: int = 1000) -> list[int]: ...
    def count_events(self) -> int: ...
    def bulk_load_events(self, rows: Iterable[tuple[str, str | None, str, str, str, int | None,
                                                    int | None, str, str]]) -> int: ...
    # deny-list
    def add_blacklist(self, entry: BlacklistEntry) -> int: ...
    def blacklist_since(self, after_id: int, limit: int) -> list[BlacklistEntry]: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS credentials (
    entity_id TEXT PRIMARY KEY, role TEXT NOT NULL, pid INTEGER NOT NULL,
    password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (
    bundle_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, manifest_id TEXT NOT NULL,
    settlement_id TEXT NOT NULL, parent_id TEXT, request_id TEXT, mtb TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS bundles_manifest ON bundles(manifest_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS bundles_request ON bundles(pid, request_id)
    WHERE parent_id IS NULL AND request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS bundle_tickets (
    bundle_id TEXT NOT NULL, position INTEGER NOT NULL, ticket_id TEXT NOT NULL,
    PRIMARY KEY (bundle_id, position));
CREATE TABLE IF NOT EXISTS tickets (
    ticket_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, bundle_id TEXT NOT NULL,
    manifest_id TEXT NOT NULL, settlement_id TEXT NOT NULL, issued_at TEXT NOT NULL,
    valid_from TEXT NOT NULL, valid_until TEXT NOT NULL, fare TEXT NOT NULL, state TEXT NOT NULL,
    payload TEXT NOT NULL, mtb TEXT NOT NULL, product_id TEXT, category TEXT, traveller_id TEXT,
    traveller_name TEXT, request_id TEXT, booking_id TEXT, refunded_amount TEXT,
    recovered_amount TEXT, recovered_from TEXT, replaced_by TEXT, updated_at TEXT);
CREATE INDEX IF NOT EXISTS tickets_traveller ON tickets(traveller_id, issued_at);
CREATE INDEX IF NOT EXISTS tickets_request ON tickets(request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS ticket_log (
    id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
    from_state TEXT, to_state TEXT NOT NULL, actor TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ticket_log_ticket ON ticket_log(ticket_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, sub TEXT NOT NULL, local_event_id TEXT, ticket_id TEXT NOT NULL,
    kind TEXT NOT NULL, event_time TEXT NOT NULL, event_result INTEGER, poster_pid INTEGER,
    received_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_dedupe ON events(sub, local_event_id);
CREATE INDEX IF NOT EXISTS events_ticket ON events(ticket_id, id);
CREATE TABLE IF NOT EXISTS blacklist (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ticket_id TEXT, traveller_id TEXT, token_id TEXT,
    expire TEXT NOT NULL, reason TEXT, created_at TEXT NOT NULL);
"""

_TICKET_COLUMNS = ("ticket_id", "pid", "bundle_id", "manifest_id", "settlement_id", "issued_at",
                   "valid_from", "valid_until", "fare", "state", "payload", "mtb", "product_id",
                   "category", "traveller_id", "traveller_name", "request_id", "booking_id",
                   "refunded_amount", "recovered_amount", "recovered_from", "replaced_by", "updated_at")
_TIME_COLUMNS = {"issued_at", "valid_from", "valid_until", "updated_at"}
_JSON_COLUMNS = {"fare", "refunded_amount", "recovered_amount"}
_CHANGEABLE = {"refunded_amount", "recovered_amount", "replaced_by"}
_EVENT_COLUMNS = ("id", "sub", "local_event_id", "ticket_id", "kind", "event_time", "event_result",
                  "poster_pid", "received_at", "body")
_IN_CHUNK = 500


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_extended(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


def _ticket_row(ticket: TicketRecord) -> tuple[Any, ...]:
    row = []
    for name in _TICKET_COLUMNS:
        value = getattr(ticket, name)
        if name in _TIME_COLUMNS:
            value = _ts(value)
        elif name in _JSON_COLUMNS and value is not None:
            value = json.dumps(value, separators=(",", ":"))
        row.append(value)
    return tuple(row)


def _ticket(row: sqlite3.Row) -> TicketRecord:
    values = {}
    for name in _TICKET_COLUMNS:
        value = row[name]
        if name in _TIME_COLUMNS:
            value = _dt(value)
        elif name in _JSON_COLUMNS and value is not None:
            value = json.loads(value)
        values[name] = value
    return TicketRecord(**values)


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(event_id=row["id"], sub=row["sub"], local_event_id=row["local_event_id"],
                       ticket_id=row["ticket_id"], kind=row["kind"], event_time=parse_time(row["event_time"]),
                       event_result=row["event_result"], poster_pid=row["poster_pid"],
                       received_at=parse_time(row["received_at"]), body=json.loads(row["body"]))


def _entry(row: sqlite3.Row) -> BlacklistEntry:
    return BlacklistEntry(entry_id=row["id"], ticket_id=row["ticket_id"], traveller_id=row["traveller_id"],
                          token_id=row["token_id"], expire=parse_time(row["expire"]), reason=row["reason"],
                          created_at=parse_time(row["created_at"]))


class SqliteStore:
    """:class:`Store` on one SQLite file (``:memory:`` works for quick tests)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
        with self._tx():
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))

    @contextlib.contextmanager
    def _tx(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- credentials ------------------------------------------------------------------------

    def add_credential(self, cred: Credential, *, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            with self._tx() as db:
                db.execute(f"{verb} INTO credentials(entity_id, role, pid, password_hash, created_at) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (cred.entity_id, cred.role, cred.pid, cred.password_hash, _ts(cred.created_at)))
        except sqlite3.IntegrityError as exc:
            raise DuplicateCredential(f"credential {cred.entity_id!r} exists") from exc

    def get_credential(self, entity_id: str) -> Credential | None:
        rows = self._read("SELECT * FROM credentials WHERE entity_id = ?", (entity_id,))
        if not rows:
            return None
        row = rows[0]
        return Credential(row["entity_id"], row["role"], row["pid"], row["password_hash"],
                          parse_time(row["created_at"]))

    def list_credentials(self) -> list[Credential]:
        return [Credential(r["entity_id"], r["role"], r["pid"], r["password_hash"], parse_time(r["created_at"]))
                for r in self._read("SELECT * FROM credentials ORDER BY entity_id")]

    def remove_credential(self, entity_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM credentials WHERE entity_id = ?", (entity_id,)).rowcount > 0

    # --- tickets ----------------------------------------------------------------------------

    def _insert_bundle(self, db: sqlite3.Connection, bundle: BundleRecord) -> None:
        db.execute("INSERT INTO bundles(bundle_id, pid, manifest_id, settlement_id, parent_id, request_id, mtb, "
                   "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (bundle.bundle_id, bundle.pid, bundle.manifest_id, bundle.settlement_id, bundle.parent_id,
                    bundle.request_id, bundle.mtb, _ts(bundle.created_at)))
        db.executemany("INSERT INTO bundle_tickets(bundle_id, position, ticket_id) VALUES (?, ?, ?)",
                       [(bundle.bundle_id, i, tid) for i, tid in enumerate(bundle.ticket_ids)])

    def create_issue(self, bundle: BundleRecord, tickets: Sequence[TicketRecord], *, actor: str,
                     replaces: str | None = None) -> None:
        placeholders = ", ".join("?" * len(_TICKET_COLUMNS))
        try:
            with self._tx() as db:
                at = _ts(bundle.created_at)
                if replaces is not None:
                    changed = db.execute("UPDATE tickets SET state = 'replaced', replaced_by = ?, updated_at = ? "
                                         "WHERE ticket_id = ? AND state = 'recovered'",
                                         (tickets[0].ticket_id, at, replaces)).rowcount
                    if not changed:
                        raise StateConflict(f"ticket {replaces} is not in the recovered state")
                    db.execute("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor) "
                               "VALUES (?, ?, 'reissue', 'recovered', 'replaced', ?)", (replaces, at, actor))
                self._insert_bundle(db, bundle)
                db.executemany(f"INSERT INTO tickets({', '.join(_TICKET_COLUMNS)}) VALUES ({placeholders})",
                               [_ticket_row(t) for t in tickets])
                db.executemany("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor) "
                               "VALUES (?, ?, 'issue', NULL, ?, ?)",
                               [(t.ticket_id, at, t.state, actor) for t in tickets])
        except sqlite3.IntegrityError as exc:
            if "bundles.manifest_id" in str(exc) or "bundles.pid, bundles.request_id" in str(exc):
                raise DuplicateManifest(str(exc)) from exc
            raise

    def find_issue(self, pid: int, request_id: str) -> BundleRecord | None:
        rows = self._read("SELECT bundle_id FROM bundles WHERE pid = ? AND request_id = ? AND parent_id IS NULL",
                          (pid, request_id))
        return self.get_bundle(rows[0]["bundle_id"]) if rows else None

    def get_ticket(self, ticket_id: str) -> TicketRecord | None:
        rows = self._read("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,))
        return _ticket(rows[0]) if rows else None

    def list_tickets(self, query: TicketQuery) -> tuple[list[TicketRecord], int]:
        column = TICKET_SORT_FIELDS[query.sort_field]  # KeyError = caller skipped the allow-list
        order = SORT_ORDERS[query.sort_order]
        where, params = ["traveller_id = ?"], [query.traveller_id]
        if query.pid is not None:
            where.append("pid = ?")
            params.append(query.pid)
        if query.request_id is not None:
            where.append("request_id = ?")
            params.append(query.request_id)
        if query.active is not None:
            where.append("state = 'active'" if query.active else "state <> 'active'")
        if query.refunded is not None:
            where.append("state = 'refunded'" if query.refunded else "state <> 'refunded'")
        if query.refundable is not None:
            clause = "(state IN ('active', 'frozen') AND valid_until > ?)"
            where.append(clause if query.refundable else f"NOT {clause}")
            params.append(_ts(query.now))
        sql_where = " AND ".join(where)
        total = self._read(f"SELECT count(*) FROM tickets WHERE {sql_where}", params)[0][0]
        rows = self._read(f"SELECT * FROM tickets WHERE {sql_where} ORDER BY {column} {order}, ticket_id {order} "
                          "LIMIT ? OFFSET ?", [*params, query.limit, query.offset])
        return [_ticket(r) for r in rows], total

    def transition(self, ticket_id: str, from_state: str, to_state: str, *, at: datetime, actor: str,
                   action: str, changes: dict[str, Any] | None = None,
                   blacklist: BlacklistEntry | None = None) -> int | None:
        """Compare-and-set the state; returns the deny-list entry id it added (or None)."""
        sets, params = ["state = ?", "updated_at = ?"], [to_state, _ts(at)]
        for name, value in (changes or {}).items():
            if name not in _CHANGEABLE:
                raise ValueError(f"column {name!r} cannot be changed by a transition")
            sets.append(f"{name} = ?")
            params.append(json.dumps(value) if name in _JSON_COLUMNS and value is not None else value)
        with self._tx() as db:
            changed = db.execute(f"UPDATE tickets SET {', '.join(sets)} WHERE ticket_id = ? AND state = ?",
                                 [*params, ticket_id, from_state]).rowcount
            if not changed:
                raise StateConflict(f"ticket {ticket_id} is no longer {from_state}")
            db.execute("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (ticket_id, _ts(at), action, from_state, to_state, actor))
            return self._add_blacklist(db, blacklist) if blacklist is not None else None

    def create_bundle(self, bundle: BundleRecord) -> None:
        with self._tx() as db:
            self._insert_bundle(db, bundle)

    def get_bundle(self, bundle_id: str) -> BundleRecord | None:
        rows = self._read("SELECT * FROM bundles WHERE bundle_id = ?", (bundle_id,))
        if not rows:
            return None
        row = rows[0]
        ids = [r[0] for r in self._read("SELECT ticket_id FROM bundle_tickets WHERE bundle_id = ? ORDER BY position",
                                        (bundle_id,))]
        return BundleRecord(bundle_id=row["bundle_id"], pid=row["pid"], manifest_id=row["manifest_id"],
                            settlement_id=row["settlement_id"], mtb=row["mtb"],
                            created_at=parse_time(row["created_at"]), ticket_ids=ids,
                            parent_id=row["parent_id"], request_id=row["request_id"])

    def ticket_log(self, ticket_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT at, action, from_state, to_state, actor FROM ticket_log "
                                            "WHERE ticket_id = ? ORDER BY id", (ticket_id,))]

    # --- events -----------------------------------------------------------------------------

    def ingest_events(self, sub: str, poster_pid: int | None, kind: str, received_at: datetime,
                      events: Sequence[NewEvent]) -> list[tuple[int, bool]]:
        """Store a batch in one transaction; ``(eventId, duplicate)`` per event, in order.

        An event whose ``(sub, localEventId)`` is already stored (or appeared earlier in the
        same batch) is not stored again: it gets the stored event's id and ``duplicate=True``.
        """
        received = _ts(received_at)
        lids = list(dict.fromkeys(e.local_event_id for e in events if e.local_event_id is not None))
        with self._tx() as db:
            known: dict[str, int] = {}
            for start in range(0, len(lids), _IN_CHUNK):
                chunk = lids[start:start + _IN_CHUNK]
                known.update(db.execute(
                    f"SELECT local_event_id, id FROM events WHERE sub = ? AND local_event_id IN "
                    f"({', '.join('?' * len(chunk))})", [sub, *chunk]).fetchall())
            next_id = (db.execute("SELECT max(id) FROM events").fetchone()[0] or 0) + 1
            result: list[tuple[int, bool]] = []
            rows = []
            for event in events:
                lid = event.local_event_id
                if lid is not None and lid in known:
                    result.append((known[lid], True))
                    continue
                if lid is not None:
                    known[lid] = next_id
                rows.append((next_id, sub, lid, event.ticket_id, kind, _ts(event.event_time), event.event_result,
                             poster_pid, received, json.dumps(event.body, separators=(",", ":"), ensure_ascii=False)))
                result.append((next_id, False))
                next_id += 1
            db.executemany(f"INSERT INTO events({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * 10)})", rows)
        return result

    def bulk_load_events(self, rows: Iterable[tuple[str, str | None, str, str, str, int | None,
                                                    int | None, str, str]]) -> int:
        """Preload (benchmarks, migrations): rows of (sub, local_event_id, ticket_id, kind,
        event_time, event_result, poster_pid, received_at, body_json), no dedupe reporting."""
        with self._tx() as db:
            cursor = db.executemany("INSERT OR IGNORE INTO events(sub, local_event_id, ticket_id, kind, event_time, "
                                    "event_result, poster_pid, received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    rows)
            return cursor.rowcount

    def get_event(self, event_id: int) -> EventRecord | None:
        rows = self._read("SELECT * FROM events WHERE id = ?", (event_id,))
        return _event(rows[0]) if rows else None

    def list_events(self, ticket_id: str, *, poster_pid: int | None = None, sort_field: str = "eventId",
                    sort_order: str = "asc", offset: int = 0, limit: int = 100) -> tuple[list[EventRecord], int]:
        column = EVENT_SORT_FIELDS[sort_field]
        order = SORT_ORDERS[sort_order]
        where, params = "ticket_id = ?", [ticket_id]
        if poster_pid is not None:
            where += " AND poster_pid = ?"
            params.append(poster_pid)
        total = self._read(f"SELECT count(*) FROM events WHERE {where}", params)[0][0]
        rows = self._read(f"SELECT * FROM events WHERE {where} ORDER BY {column} {order}, id {order} "
                          "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_event(r) for r in rows], total

    def event_ids(self, ticket_id: str, limit: int = 1000) -> list[int]:
        return [r[0] for r in self._read("SELECT id FROM events WHERE ticket_id = ? ORDER BY id LIMIT ?",
                                         (ticket_id, limit))]

    def count_events(self) -> int:
        return self._read("SELECT count(*) FROM events")[0][0]

    # --- deny-list --------------------------------------------------------------------------

    @staticmethod
    def _add_blacklist(db: sqlite3.Connection, entry: BlacklistEntry) -> int:
        created = entry.created_at or entry.expire
        cursor = db.execute("INSERT INTO blacklist(ticket_id, traveller_id, token_id, expire, reason, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (entry.ticket_id, entry.traveller_id, entry.token_id,
                                                         _ts(entry.expire), entry.reason, _ts(created)))
        return int(cursor.lastrowid)

    def add_blacklist(self, entry: BlacklistEntry) -> int:
        with self._tx() as db:
            return self._add_blacklist(db, entry)

    def blacklist_since(self, after_id: int, limit: int) -> list[BlacklistEntry]:
        return [_entry(r) for r in self._read("SELECT * FROM blacklist WHERE id > ? ORDER BY id LIMIT ?",
                                              (after_id, limit))]


class StoreRunner:
    """Runs store calls on one dedicated thread: ``await runner(store.get_ticket, tid)``."""

    def __init__(self, store: Store):
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
