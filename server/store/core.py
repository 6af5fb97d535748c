"""The core store: credentials, tickets and bundles, device events, the deny list.

All of its SQL is here, written once for every backend (see :mod:`server.store.database` for
the dialect rules); handlers and services see records (:mod:`server.store.records`). Each
method is one transaction; the store runner calls them off the event loop.

Hot paths and their indices: events by ``(sub, local_event_id)`` UNIQUE (de-duplication is
the constraint's job: ``INSERT ... ON CONFLICT DO NOTHING``, so two server processes posting
the same batch store it once), events by ``(ticket_id, id)``, the deny list by its id (ids
only grow, never reused; allocations are serialised so they commit in id order), tickets by
``(traveller_id, issued_at)``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from mtb.timeutil import format_extended, parse_time

from .database import Database, Row, Tx, migrate
from .records import (DEVICE_SORT_FIELDS, EVENT_SORT_FIELDS, SORT_ORDERS, TICKET_SORT_FIELDS, BundleRecord,
                      Credential, DenyEntry, DeviceReport, DuplicateCredential, DuplicateManifest, EventRecord,
                      LimitState, ManifestRecord, NewEvent, StateConflict, TicketQuery, TicketRecord, TokenRecord,
                      WhitelistEntry)

_TICKET_COLUMNS = ("ticket_id", "pid", "bundle_id", "manifest_id", "settlement_id", "issued_at",
                   "valid_from", "valid_until", "fare", "state", "payload", "mtb", "product_id",
                   "category", "traveller_id", "traveller_name", "request_id", "booking_id",
                   "refunded_amount", "recovered_amount", "recovered_from", "replaced_by", "updated_at")
_TIME_COLUMNS = {"issued_at", "valid_from", "valid_until", "updated_at"}
_JSON_COLUMNS = {"fare", "refunded_amount", "recovered_amount"}
_CHANGEABLE = {"refunded_amount", "recovered_amount", "replaced_by"}
_EVENT_COLUMNS = "sub, local_event_id, ticket_id, kind, event_time, event_result, poster_pid, received_at, body"
_IN_CHUNK = 500
T = TypeVar("T")
DENY_SEQUENCE = "deny_list"  # the lock deny ids are taken under, and the channel that says one committed
HISTORY_EVERY = timedelta(minutes=5)  # a device's state history: at least this apart unless it changed
HISTORY_KEEP = timedelta(days=7)  # ... and this long
USES_LOCK = "uses"  # held shared by ingests (they commit in any order), exclusively by a horizon read
WHITELIST_SEQUENCE = "whitelist"


def ts(value: datetime | None) -> str | None:
    """The stored (and wire) form of a time."""
    return None if value is None else format_extended(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ticket_row(ticket: TicketRecord) -> tuple[Any, ...]:
    row = []
    for name in _TICKET_COLUMNS:
        value = getattr(ticket, name)
        if name in _TIME_COLUMNS:
            value = ts(value)
        elif name in _JSON_COLUMNS and value is not None:
            value = _json_text(value)
        row.append(value)
    return tuple(row)


def _ticket(row: Row) -> TicketRecord:
    values = {}
    for name in _TICKET_COLUMNS:
        value = row[name]
        if name in _TIME_COLUMNS:
            value = _dt(value)
        elif name in _JSON_COLUMNS and value is not None:
            value = json.loads(value)
        values[name] = value
    return TicketRecord(**values)


def _event(row: Row) -> EventRecord:
    return EventRecord(event_id=row["id"], sub=row["sub"], local_event_id=row["local_event_id"],
                       ticket_id=row["ticket_id"], kind=row["kind"], event_time=parse_time(row["event_time"]),
                       event_result=row["event_result"], poster_pid=row["poster_pid"],
                       received_at=parse_time(row["received_at"]), body=json.loads(row["body"]))


def _deny_entry(row: Row) -> DenyEntry:
    return DenyEntry(entry_id=row["id"], ticket_id=row["ticket_id"], traveller_id=row["traveller_id"],
                     token_id=row["token_id"], expire=parse_time(row["expire"]), reason=row["reason"],
                     created_at=parse_time(row["created_at"]))


def _token(row: Row) -> TokenRecord:
    return TokenRecord(token_id=row["token_id"], pid=row["pid"], public_key=json.loads(row["public_key"]),
                       created_at=parse_time(row["created_at"]), serial=row["serial"])


def _credential(row: Row) -> Credential:
    return Credential(row["entity_id"], row["role"], row["pid"], row["password_hash"], parse_time(row["created_at"]),
                      row["cert_subject"])


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


def write_issues(tx: Tx, issues: Sequence[tuple[BundleRecord, Sequence[TicketRecord]]], *, actor: str) -> None:
    """Store issued bundles and their tickets (with the log's ``issue`` entries) in the caller's
    transaction, a statement per table for all of them: ``POST /ticket`` writes one, the B2B
    roll-over a batch. DuplicateManifest when a bundle's manifest or requestId was used before."""
    if not issues:
        return
    added = tx.returning("INSERT INTO bundles(bundle_id, pid, manifest_id, settlement_id, parent_id, request_id, mtb, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING bundle_id",
                         [(b.bundle_id, b.pid, b.manifest_id, b.settlement_id, b.parent_id, b.request_id, b.mtb,
                           ts(b.created_at)) for b, _ in issues])
    for (bundle, _), row in zip(issues, added):
        if row is None:
            raise DuplicateManifest(f"bundle {bundle.bundle_id}: its manifest {bundle.manifest_id} or request "
                                    f"{bundle.request_id} was already used")
    tx.executemany("INSERT INTO bundle_tickets(bundle_id, position, ticket_id) VALUES (?, ?, ?)",
                   [(b.bundle_id, i, tid) for b, _ in issues for i, tid in enumerate(b.ticket_ids)])
    tx.executemany(f"INSERT INTO tickets({', '.join(_TICKET_COLUMNS)}) VALUES ({_placeholders(len(_TICKET_COLUMNS))})",
                   [_ticket_row(t) for _, records in issues for t in records])
    tx.executemany("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor) "
                   "VALUES (?, ?, 'issue', NULL, ?, ?)",
                   [(t.ticket_id, ts(b.created_at), t.state, actor) for b, records in issues for t in records])


class Store:
    """The core store on one :class:`~server.store.database.Database` (migrated on open)."""

    def __init__(self, db: Database, *, now: datetime):
        self.db = db
        self.schema_version = migrate(db, now=ts(now) or "")

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.db.query(sql, params)
        return rows[0] if rows else None

    # --- credentials ------------------------------------------------------------------------

    def add_credential(self, cred: Credential, *, replace: bool = False) -> None:
        conflict = ("DO UPDATE SET role = excluded.role, pid = excluded.pid, password_hash = excluded.password_hash, "
                    "created_at = excluded.created_at, cert_subject = excluded.cert_subject") if replace else "DO NOTHING"
        with self.db.transaction() as tx:
            added = tx.execute("INSERT INTO credentials(entity_id, role, pid, password_hash, created_at, cert_subject) "
                               f"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (entity_id) {conflict}",
                               (cred.entity_id, cred.role, cred.pid, cred.password_hash, ts(cred.created_at),
                                cred.cert_subject))
        if not added:
            raise DuplicateCredential(f"credential {cred.entity_id!r} exists")

    def set_password_hash(self, entity_id: str, password_hash: str, replaces: str) -> bool:
        """Re-hash in place, only if the stored hash is still ``replaces`` (a credential replaced
        meanwhile keeps its new password)."""
        with self.db.transaction() as tx:
            return tx.execute("UPDATE credentials SET password_hash = ? WHERE entity_id = ? AND password_hash = ?",
                              (password_hash, entity_id, replaces)) > 0

    def get_credential(self, entity_id: str) -> Credential | None:
        row = self._one("SELECT * FROM credentials WHERE entity_id = ?", (entity_id,))
        return _credential(row) if row else None

    def list_credentials(self) -> list[Credential]:
        return [_credential(r) for r in self.db.query("SELECT * FROM credentials ORDER BY entity_id")]

    def remove_credential(self, entity_id: str) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM credentials WHERE entity_id = ?", (entity_id,)) > 0

    # --- tickets ----------------------------------------------------------------------------

    def create_issue(self, bundle: BundleRecord, tickets: Sequence[TicketRecord], *, actor: str,
                     replaces: str | None = None, whitelist: Sequence[WhitelistEntry] = ()) -> None:
        """Issue tickets (and the whitelist entries of those bound to a token) in one transaction."""
        with self.db.transaction() as tx:
            at = ts(bundle.created_at)
            if replaces is not None:
                changed = tx.execute("UPDATE tickets SET state = 'replaced', replaced_by = ?, updated_at = ? "
                                     "WHERE ticket_id = ? AND state = 'recovered'",
                                     (tickets[0].ticket_id, at, replaces))
                if not changed:
                    raise StateConflict(f"ticket {replaces} is not in the recovered state")
                tx.execute("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor) "
                           "VALUES (?, ?, 'reissue', 'recovered', 'replaced', ?)", (replaces, at, actor))
            write_issues(tx, [(bundle, tickets)], actor=actor)
            self.add_whitelist_in(tx, whitelist)

    def find_issue(self, pid: int, request_id: str) -> BundleRecord | None:
        row = self._one("SELECT bundle_id FROM bundles WHERE pid = ? AND request_id = ? AND parent_id IS NULL",
                        (pid, request_id))
        return self.get_bundle(row["bundle_id"]) if row else None

    def get_ticket(self, ticket_id: str) -> TicketRecord | None:
        row = self._one("SELECT * FROM tickets WHERE ticket_id = ?", (ticket_id,))
        return _ticket(row) if row else None

    def list_tickets(self, query: TicketQuery) -> tuple[list[TicketRecord], int]:
        column = TICKET_SORT_FIELDS[query.sort_field]  # KeyError = caller skipped the allow-list
        order = SORT_ORDERS[query.sort_order]
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("traveller_id = ?", query.traveller_id), ("pid = ?", query.pid),
                              ("request_id = ?", query.request_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if query.active is not None:
            where.append("state = 'active'" if query.active else "state <> 'active'")
        if query.refunded is not None:
            where.append("state = 'refunded'" if query.refunded else "state <> 'refunded'")
        if query.refundable is not None:
            clause = "(state IN ('active', 'frozen') AND valid_until > ?)"
            where.append(clause if query.refundable else f"NOT {clause}")
            params.append(ts(query.now))
        sql_where = " AND ".join(where) or "1 = 1"
        total = self.db.query(f"SELECT count(*) AS n FROM tickets WHERE {sql_where}", params)[0]["n"]
        rows = self.db.query(f"SELECT * FROM tickets WHERE {sql_where} ORDER BY {column} {order}, "
                             f"ticket_id {order} LIMIT ? OFFSET ?", [*params, query.limit, query.offset])
        return [_ticket(r) for r in rows], total

    def transition(self, ticket_id: str, from_state: str, to_state: str, *, at: datetime, actor: str,
                   action: str, changes: dict[str, Any] | None = None, deny: DenyEntry | None = None,
                   reason: str | None = None) -> int | None:
        """Compare-and-set the state; returns the deny-list entry id it added (or None). The
        log row keeps who (``actor``), why (``reason``, free text) and that deny-list entry."""
        sets, params = ["state = ?", "updated_at = ?"], [to_state, ts(at)]
        for name, value in (changes or {}).items():
            if name not in _CHANGEABLE:
                raise ValueError(f"column {name!r} cannot be changed by a transition")
            sets.append(f"{name} = ?")
            params.append(_json_text(value) if name in _JSON_COLUMNS and value is not None else value)
        with self.db.transaction() as tx:
            changed = tx.execute(f"UPDATE tickets SET {', '.join(sets)} WHERE ticket_id = ? AND state = ?",
                                 [*params, ticket_id, from_state])
            if not changed:
                raise StateConflict(f"ticket {ticket_id} is no longer {from_state}")
            deny_id = self.add_deny_in(tx, deny) if deny is not None else None
            tx.execute("INSERT INTO ticket_log(ticket_id, at, action, from_state, to_state, actor, reason, deny_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (ticket_id, ts(at), action, from_state, to_state, actor, reason, deny_id))
            return deny_id

    def create_bundle(self, bundle: BundleRecord) -> None:
        with self.db.transaction() as tx:
            write_issues(tx, [(bundle, ())], actor="")

    def get_bundle(self, bundle_id: str) -> BundleRecord | None:
        row = self._one("SELECT * FROM bundles WHERE bundle_id = ?", (bundle_id,))
        if row is None:
            return None
        ids = [r["ticket_id"] for r in self.db.query("SELECT ticket_id FROM bundle_tickets WHERE bundle_id = ? "
                                                     "ORDER BY position", (bundle_id,))]
        return BundleRecord(bundle_id=row["bundle_id"], pid=row["pid"], manifest_id=row["manifest_id"],
                            settlement_id=row["settlement_id"], mtb=row["mtb"],
                            created_at=parse_time(row["created_at"]), ticket_ids=ids,
                            parent_id=row["parent_id"], request_id=row["request_id"])

    def ticket_log(self, ticket_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.query("SELECT at, action, from_state, to_state, actor, reason, deny_id "
                                               "FROM ticket_log WHERE ticket_id = ? ORDER BY id", (ticket_id,))]

    # --- events -----------------------------------------------------------------------------

    def ingest_events(self, sub: str, poster_pid: int | None, kind: str, received_at: datetime,
                      events: Sequence[NewEvent]) -> list[tuple[int, bool]]:
        """Store a batch in one transaction; ``(eventId, duplicate)`` per event, in order.

        An event whose ``(sub, localEventId)`` is already stored (or appeared earlier in the
        same batch) is not stored again: it gets the stored event's id and ``duplicate=True``.
        The unique constraint decides, so a batch posted to two server processes at once is
        stored once; the one that lost the race reports the other's ids as duplicates.
        """
        received = ts(received_at)
        with self.db.transaction() as tx:
            tx.share(USES_LOCK)
            known = self._known_events(tx, sub, [e.local_event_id for e in events if e.local_event_id is not None])
            fresh: list[int] = []  # positions of the events to insert
            for index, event in enumerate(events):
                lid = event.local_event_id
                if lid is None or lid not in known:
                    fresh.append(index)
                    if lid is not None:
                        known[lid] = -1  # later copies in this batch are duplicates of this one
            inserted = tx.returning(
                f"INSERT INTO events({_EVENT_COLUMNS}, mtb_ref, lat, long) VALUES ({_placeholders(12)}) "
                "ON CONFLICT DO NOTHING RETURNING id",
                [(sub, e.local_event_id, e.ticket_id, kind, ts(e.event_time), e.event_result, poster_pid, received,
                  _json_text(e.body), e.mtb_ref, e.lat, e.long) for e in (events[i] for i in fresh)])
            new_ids: dict[int, int] = {}
            raced: list[str] = []
            for index, row in zip(fresh, inserted):
                lid = events[index].local_event_id
                if row is None:  # stored by another process between our look-up and our insert
                    raced.append(lid)  # type: ignore[arg-type]  (a NULL localEventId never conflicts)
                    continue
                new_ids[index] = row["id"]
                if lid is not None:
                    known[lid] = row["id"]
            if raced:
                known.update(self._known_events(tx, sub, raced))
            uses = [(events[i].ticket_id, event_id, ts(events[i].event_time), events[i].use)
                    for i, event_id in new_ids.items() if events[i].use is not None]
            tx.executemany("INSERT INTO uses(ticket_id, event_id, used_at, entry) VALUES (?, ?, ?, ?)", uses)
        return [(new_ids[i], False) if i in new_ids else (known[e.local_event_id], True)  # type: ignore[index]
                for i, e in enumerate(events)]

    @staticmethod
    def _known_events(tx: Tx, sub: str, lids: list[str]) -> dict[str, int]:
        unique = list(dict.fromkeys(lids))
        known: dict[str, int] = {}
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start:start + _IN_CHUNK]
            for row in tx.query(f"SELECT local_event_id, id FROM events WHERE sub = ? AND local_event_id IN "
                                f"({_placeholders(len(chunk))})", [sub, *chunk]):
                known[row["local_event_id"]] = row["id"]
        return known

    def bulk_load_events(self, rows: Iterable[tuple[str, str | None, str, str, str, int | None,
                                                    int | None, str, str]]) -> int:
        """Preload (benchmarks, migrations): rows of (sub, local_event_id, ticket_id, kind,
        event_time, event_result, poster_pid, received_at, body_json), no dedupe reporting."""
        with self.db.transaction() as tx:
            return tx.executemany(f"INSERT INTO events({_EVENT_COLUMNS}) VALUES ({_placeholders(9)}) "
                                  "ON CONFLICT DO NOTHING", list(rows))

    def get_event(self, event_id: int) -> EventRecord | None:
        row = self._one("SELECT * FROM events WHERE id = ?", (event_id,))
        return _event(row) if row else None

    def list_events(self, ticket_id: str, *, poster_pid: int | None = None, sort_field: str = "eventId",
                    sort_order: str = "asc", offset: int = 0, limit: int = 100) -> tuple[list[EventRecord], int]:
        column = EVENT_SORT_FIELDS[sort_field]
        order = SORT_ORDERS[sort_order]
        where, params = "ticket_id = ?", [ticket_id]
        if poster_pid is not None:
            where += " AND poster_pid = ?"
            params.append(poster_pid)
        total = self.db.query(f"SELECT count(*) AS n FROM events WHERE {where}", params)[0]["n"]
        rows = self.db.query(f"SELECT * FROM events WHERE {where} ORDER BY {column} {order}, id {order} "
                             "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_event(r) for r in rows], total

    def event_ids(self, ticket_id: str, limit: int) -> list[int]:
        """The ids of the ticket's newest ``limit`` events, oldest first."""
        rows = self.db.query("SELECT id FROM events WHERE ticket_id = ? ORDER BY id DESC LIMIT ?", (ticket_id, limit))
        return [r["id"] for r in reversed(rows)]

    def count_events(self) -> int:
        return self.db.query("SELECT count(*) AS n FROM events")[0]["n"]

    def nearest_placed_event(self, mtb_ref: str, at: datetime) -> EventRecord | None:
        """The event of an MTB with a position that is nearest in time to ``at`` (the fraud check)."""
        found = []
        for op, order in (("<=", "DESC"), (">", "ASC")):
            row = self._one(f"SELECT * FROM events WHERE mtb_ref = ? AND lat IS NOT NULL AND event_time {op} ? "
                            f"ORDER BY event_time {order}, id {order} LIMIT 1", (mtb_ref, ts(at)))
            if row is not None:
                found.append(_event(row))
        return min(found, key=lambda e: abs((e.event_time - at).total_seconds()), default=None)

    def note_fraudcheck_answer(self, sub: str, event_id: int, at: datetime) -> bool:
        """Record that client ``sub`` was told about event ``event_id``; False if it was before."""
        with self.db.transaction() as tx:
            return tx.execute("INSERT INTO fraudcheck_answers(sub, event_id, answered_at) VALUES (?, ?, ?) "
                              "ON CONFLICT DO NOTHING", (sub, event_id, ts(at))) > 0

    # --- deny list --------------------------------------------------------------------------

    @staticmethod
    def add_deny_in(tx: Tx, entry: DenyEntry) -> int:
        """Add an entry inside ``tx``; its id is larger than every id committed before it."""
        tx.serialize(DENY_SEQUENCE)
        tx.notify(DENY_SEQUENCE)
        created = entry.created_at or entry.expire
        [row] = tx.returning("INSERT INTO deny_list(ticket_id, traveller_id, token_id, expire, reason, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                             [(entry.ticket_id, entry.traveller_id, entry.token_id, ts(entry.expire), entry.reason,
                               ts(created))])
        return int(row["id"])

    def add_deny(self, entry: DenyEntry) -> int:
        with self.db.transaction() as tx:
            return self.add_deny_in(tx, entry)

    def deny_newest(self) -> int:
        return self.db.query("SELECT coalesce(max(id), 0) AS newest FROM deny_list")[0]["newest"]

    def deny_since(self, after_id: int, limit: int) -> list[DenyEntry]:
        return [_deny_entry(r) for r in self.db.query("SELECT * FROM deny_list WHERE id > ? ORDER BY id LIMIT ?",
                                                      (after_id, limit))]

    def deny_page(self, after_id: int, *, offset: int = 0, limit: int = 100,
                  sort_order: str = "asc") -> tuple[list[Row], int]:
        """Entries with id > ``after_id`` by id (``asc``: the feed order), a page of them as stored
        (times already in the wire form: nothing to parse and format again), and how many there are."""
        order = SORT_ORDERS[sort_order]
        total = self.db.query("SELECT count(*) AS n FROM deny_list WHERE id > ?", (after_id,))[0]["n"]
        rows = self.db.query(f"SELECT id, ticket_id, traveller_id, token_id, expire FROM deny_list WHERE id > ? "
                             f"ORDER BY id {order} LIMIT ? OFFSET ?", (after_id, limit, offset))
        return rows, total

    # --- the uses feed ----------------------------------------------------------------------

    def uses_horizon(self) -> int:
        """The largest use id below which every id has committed (or never will): ingests may
        commit out of id order, so this waits for the ones in flight (they hold the lock shared).
        A database whose writers commit one at a time has nothing in flight to wait for."""
        if self.db.commits_in_id_order:
            return self.db.query("SELECT coalesce(max(id), 0) AS newest FROM uses")[0]["newest"]
        with self.db.transaction() as tx:
            tx.serialize(USES_LOCK)
            return tx.query("SELECT coalesce(max(id), 0) AS newest FROM uses")[0]["newest"]

    def uses_since(self, after_id: int, upto_id: int, since: datetime, limit: int) -> list[tuple[int, str]]:
        """``(id, entry)`` of the uses with after_id < id <= upto_id, at or after ``since``."""
        return [(r["id"], r["entry"]) for r in self.db.query(
            "SELECT id, entry FROM uses WHERE id > ? AND id <= ? AND used_at >= ? ORDER BY id LIMIT ?",
            (after_id, upto_id, ts(since), limit))]

    def prune_uses(self, before: datetime) -> int:
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM uses WHERE used_at < ?", (ts(before),))

    # --- rate limits ------------------------------------------------------------------------

    @staticmethod
    def _limit_state(row: Row | None) -> LimitState | None:
        if row is None:
            return None
        blocked = row["blocked_until_ms"]
        return LimitState(hits=[int(t) / 1000 for t in row["hits"].split()],
                          blocked_until=None if blocked is None else blocked / 1000,
                          keep_until=row["keep_until_ms"] / 1000)

    def get_limit(self, key: str) -> LimitState | None:
        return self._limit_state(self._one("SELECT * FROM rate_limits WHERE limit_key = ?", (key,)))

    def change_limit(self, key: str, change: Callable[[LimitState], T]) -> T:
        """Read ``key``'s state, let ``change`` modify it, write it back: one transaction under a
        lock on the key, so concurrent processes take slots one after the other. Not durable:
        rate-limit state may lose its last moments in a crash."""
        with self.db.transaction(durable=False) as tx:
            tx.serialize(f"rate_limits:{key}")
            rows = tx.query("SELECT * FROM rate_limits WHERE limit_key = ?", (key,))
            state = self._limit_state(rows[0] if rows else None) or LimitState()
            result = change(state)
            # milliseconds, rounded down (a block never reads longer than it was set) but kept longer
            blocked = None if state.blocked_until is None else math.floor(state.blocked_until * 1000)
            tx.execute("INSERT INTO rate_limits(limit_key, hits, blocked_until_ms, keep_until_ms) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (limit_key) DO UPDATE SET hits = excluded.hits, "
                       "blocked_until_ms = excluded.blocked_until_ms, keep_until_ms = excluded.keep_until_ms",
                       (key, " ".join(str(math.floor(t * 1000)) for t in state.hits), blocked,
                        math.ceil(state.keep_until * 1000)))
        return result

    def sweep_limits(self, now: float) -> int:
        """Drop the states that no longer say anything (windows passed, blocks over)."""
        with self.db.transaction(durable=False) as tx:
            return tx.execute("DELETE FROM rate_limits WHERE keep_until_ms < ?", (round(now * 1000),))

    # --- the fleet --------------------------------------------------------------------------

    def report_device(self, report: DeviceReport) -> None:
        """Keep ``report`` as the device's latest (one row per device, with when it last
        fetched the deny list), and in its history (:meth:`_keep_history`)."""
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO devices(device, last_contact, software_version, outbox_depth, alarm_count, state, "
                       "deny_fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET "
                       "last_contact = excluded.last_contact, software_version = excluded.software_version, "
                       "outbox_depth = excluded.outbox_depth, alarm_count = excluded.alarm_count, "
                       "state = excluded.state, deny_fetched_at = excluded.deny_fetched_at",
                       (report.device, ts(report.last_contact), report.software_version, report.outbox_depth,
                        report.alarm_count, report.state, ts(report.deny_fetched_at())))
            self._keep_history(tx, report)

    @staticmethod
    def _keep_history(tx: Tx, report: DeviceReport) -> None:
        """A device's state over time, thinned (a device reports at every sync): a row when the
        software or the number of alarms changed, else one every ``HISTORY_EVERY``; rows older
        than ``HISTORY_KEEP`` go. The operator console's device page shows it."""
        last = tx.query("SELECT at, software_version, alarm_count FROM device_history WHERE device = ? "
                        "ORDER BY at DESC LIMIT 1", (report.device,))
        if last and last[0]["software_version"] == report.software_version \
                and last[0]["alarm_count"] == report.alarm_count \
                and parse_time(last[0]["at"]) > report.last_contact - HISTORY_EVERY:
            return
        tx.execute("INSERT INTO device_history(device, at, software_version, outbox_depth, alarm_count, state) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (report.device, ts(report.last_contact), report.software_version,
                                                  report.outbox_depth, report.alarm_count, report.state))
        tx.execute("DELETE FROM device_history WHERE device = ? AND at < ?",
                   (report.device, ts(report.last_contact - HISTORY_KEEP)))

    def list_devices(self, *, silent_since: datetime, silent: bool | None = None, alarm: bool | None = None,
                     sort_field: str = "lastContact", sort_order: str = "asc", offset: int = 0,
                     limit: int = 100) -> tuple[list[DeviceReport], int]:
        """Devices, filtered: ``silent`` (no contact since ``silent_since``) and ``alarm``."""
        column, order = DEVICE_SORT_FIELDS[sort_field], SORT_ORDERS[sort_order]
        where: list[str] = []
        params: list[Any] = []
        if silent is not None:
            where.append("last_contact < ?" if silent else "last_contact >= ?")
            params.append(ts(silent_since))
        if alarm is not None:
            where.append("alarm_count > 0" if alarm else "alarm_count = 0")
        sql_where = " AND ".join(where) or "1 = 1"
        total = self.db.query(f"SELECT count(*) AS n FROM devices WHERE {sql_where}", params)[0]["n"]
        rows = self.db.query(f"SELECT * FROM devices WHERE {sql_where} ORDER BY {column} {order}, device {order} "
                             "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [DeviceReport(r["device"], parse_time(r["last_contact"]), r["software_version"], r["outbox_depth"],
                             r["alarm_count"], r["state"]) for r in rows], total

    def device_counts(self, silent_since: datetime) -> dict[str, int]:
        """Devices by state: silent (no contact since ``silent_since``), else alarm, else ok."""
        [row] = self.db.query("SELECT count(*) AS total, "
                              "coalesce(sum(CASE WHEN last_contact < ? THEN 1 ELSE 0 END), 0) AS silent, "
                              "coalesce(sum(CASE WHEN last_contact >= ? AND alarm_count > 0 THEN 1 ELSE 0 END), 0) "
                              "AS alarm FROM devices", (ts(silent_since), ts(silent_since)))
        silent, alarm = int(row["silent"]), int(row["alarm"])
        return {"silent": silent, "alarm": alarm, "ok": int(row["total"]) - silent - alarm}

    # --- operations -------------------------------------------------------------------------

    def ping(self) -> None:
        """One round trip to the database (``/health``)."""
        self.db.query("SELECT 1 AS one")

    def fleet_gauges(self, now: datetime, silent_since: datetime) -> dict[str, Any]:
        """What ``/metrics`` reads from the database at each scrape."""
        [deny] = self.db.query("SELECT count(*) AS active, (SELECT coalesce(max(id), 0) FROM deny_list) AS newest "
                               "FROM deny_list WHERE expire > ?", (ts(now),))
        return {"deny_active": deny["active"], "deny_newest_id": deny["newest"],
                "devices": self.device_counts(silent_since)}

    # --- BoB's feeds beside the deny list: the revocation list, the whitelist -----------------

    def _feed_page(self, table: str, after_id: int, offset: int, limit: int, sort_order: str,
                   where: str = "") -> tuple[list[Row], int]:
        """Rows of a feed (the deny list, the whitelist) with id > ``after_id`` by id (``asc``:
        the feed order), a page of them, and how many there are."""
        order = SORT_ORDERS[sort_order]
        condition = f"id > ?{' AND ' + where if where else ''}"
        total = self.db.query(f"SELECT count(*) AS n FROM {table} WHERE {condition}", (after_id,))[0]["n"]
        rows = self.db.query(f"SELECT * FROM {table} WHERE {condition} ORDER BY id {order} LIMIT ? OFFSET ?",
                             (after_id, limit, offset))
        return rows, total

    def token_revocations_page(self, after_id: int, *, offset: int = 0, limit: int = 100,
                               sort_order: str = "asc") -> tuple[list[DenyEntry], int]:
        """The deny list's entries naming a token, after ``after_id``: the Token API's revocation
        list is this same list, seen through its tokens."""
        rows, total = self._feed_page("deny_list", after_id, offset, limit, sort_order, "token_id IS NOT NULL")
        return [_deny_entry(r) for r in rows], total

    _DENY_COLUMNS = {"ticket": "ticket_id", "traveller": "traveller_id", "token": "token_id"}

    def denied(self, candidates: Sequence[tuple[str, str]], now: datetime) -> str | None:
        """The first of ``(kind, value)`` (kind: ticket, traveller or token) on the deny list now,
        as ``"ticket T1"``, or None: for each, its newest entry decides (an expired one lifts the
        earlier ones)."""
        for kind, value in candidates:
            column = self._DENY_COLUMNS[kind]
            row = self._one(f"SELECT expire FROM deny_list WHERE {column} = ? ORDER BY id DESC LIMIT 1", (value,))
            if row is not None and parse_time(row["expire"]) > now:
                return f"{kind} {value}"
        return None

    # --- manifests --------------------------------------------------------------------------

    def add_manifest(self, manifest: ManifestRecord) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO manifests(manifest_id, pid, created_at, expire, body) VALUES (?, ?, ?, ?, ?)",
                       (manifest.manifest_id, manifest.pid, ts(manifest.created_at), ts(manifest.expire),
                        _json_text(manifest.body)))

    def get_manifest(self, manifest_id: str) -> ManifestRecord | None:
        row = self._one("SELECT * FROM manifests WHERE manifest_id = ?", (manifest_id,))
        if row is None:
            return None
        return ManifestRecord(row["manifest_id"], row["pid"], parse_time(row["created_at"]), parse_time(row["expire"]),
                              json.loads(row["body"]))

    # --- tokens and the whitelist -----------------------------------------------------------

    def add_token(self, token: TokenRecord) -> bool:
        """Register a token; False when its thumbprint was known (the first registration stands,
        save that a serial learnt later is kept)."""
        with self.db.transaction() as tx:
            added = tx.execute("INSERT INTO tokens(token_id, pid, serial, public_key, created_at) VALUES (?, ?, ?, ?, ?) "
                               "ON CONFLICT (token_id) DO NOTHING",
                               (token.token_id, token.pid, token.serial, _json_text(token.public_key),
                                ts(token.created_at)))
            if not added and token.serial is not None:
                tx.execute("UPDATE tokens SET serial = ? WHERE token_id = ? AND serial IS NULL",
                           (token.serial, token.token_id))
        return bool(added)

    def get_token(self, token_id: str) -> TokenRecord | None:
        row = self._one("SELECT * FROM tokens WHERE token_id = ?", (token_id,))
        return _token(row) if row else None

    def tokens_by_serial(self, pid: int, serial: int) -> list[TokenRecord]:
        return [_token(r) for r in self.db.query("SELECT * FROM tokens WHERE pid = ? AND serial = ? ORDER BY token_id",
                                                 (pid, serial))]

    def list_tokens(self) -> list[TokenRecord]:
        return [_token(r) for r in self.db.query("SELECT * FROM tokens ORDER BY pid, serial, token_id")]

    def whitelist_page(self, after_id: int, *, offset: int = 0, limit: int = 100,
                       sort_order: str = "asc") -> tuple[list[WhitelistEntry], int]:
        rows, total = self._feed_page("whitelist", after_id, offset, limit, sort_order)
        return [WhitelistEntry(entry_id=r["id"], token_id=r["token_id"], ticket_id=r["ticket_id"], mtb=r["mtb"],
                               valid_from=parse_time(r["valid_from"]), valid_until=parse_time(r["valid_until"]),
                               created_at=parse_time(r["created_at"]), priority=r["priority"]) for r in rows], total

    @staticmethod
    def add_whitelist_in(tx: Tx, entries: Sequence[WhitelistEntry]) -> None:
        """Add entries inside ``tx``; their ids are larger than every id committed before them."""
        if not entries:
            return
        tx.serialize(WHITELIST_SEQUENCE)
        tx.executemany("INSERT INTO whitelist(token_id, ticket_id, mtb, valid_from, valid_until, priority, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(e.token_id, e.ticket_id, e.mtb, ts(e.valid_from), ts(e.valid_until), e.priority,
                         ts(e.created_at)) for e in entries])
