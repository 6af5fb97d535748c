"""The B2B store: every SQL statement of the employer side, written once in the portable SQL
of :mod:`server.store.database` (``?`` placeholders, ``ON CONFLICT``, ``RETURNING``, named
computed columns), over the same :class:`~server.store.database.Database` as the core store;
the tables are migration ``0003_b2b``.

A change and the webhook events it causes commit together (:meth:`B2BStore._enqueue` runs
inside the change's transaction): a crash loses neither, and an event is never sent for a
change that rolled back.

Several server processes (and the CLI) may work on one database:

- an HR sync, the roll-over's status refresh and its issuing take the company's lock
  (:func:`company_lock`, ``Tx.serialize``) and read the employees inside that transaction, so
  they never write an employee from a stale read;
- one live ticket per employee and month is the unique index ``b2b_tickets_live``: a ticket
  whose insert it refuses (another roll-over got there first) is dropped unseen, never a 409;
- the queues (webhook deliveries, documents to render, revocations) are claimed with a lease
  (``Tx.claim_rows``: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so each row is worked on by one
  process at a time and a dead process's rows are taken over when its lease runs out.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from mtb.timeutil import parse_time

from ..store.core import ts, write_issues
from ..store.database import Database, Row, Tx
from . import webhooks
from .calendar import Month
from .reconcile import HrData, Profile, SyncPlan, summary
from .records import (ApiKey, Attempt, Company, Delivery, Document, DuplicateSync, Employee, Endpoint, Integration,
                      IssueTerms, NewTicket, Planned, Product, Query, RenderJob, SyncRun, TicketRef)
from .resources import document_event_payload, subscription_event_payload
from .subscription import Dates, Plan

EMPLOYEE_SORT = {"id": "id", "firstName": "first_name", "lastName": "last_name", "email": "email",
                 "startAt": "start_at", "status": "status", "createdAt": "created_at", "updatedAt": "updated_at"}
DOCUMENT_SORT = {"id": "id", "createdAt": "created_at", "documentName": "name", "ticketMonth": "month"}
INTEGRATION_SORT = {"id": "id", "name": "name", "lastSyncedAt": "last_synced_at", "createdAt": "created_at"}
ORDERS = {"asc": "ASC", "desc": "DESC"}
_IN_CHUNK = 500
SYNC_FAILURES_KEPT = 100  # refused HR syncs kept per integration (the newest)
T = TypeVar("T")
Query_ = Callable[[str, Sequence[Any]], list[Row]]  # db.query, or tx.query inside a transaction


def company_lock(company_id: int) -> str:
    """The lock an HR sync and the roll-over take on a company's employees."""
    return f"b2b-company:{company_id}"


def _d(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _t(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _company(row: Row) -> Company:
    product = Product(row["product_id"], tuple(json.loads(row["zones"])), tuple(json.loads(row["modes"])),
                      json.loads(row["fare"]), row["category"])
    return Company(row["id"], row["name"], bool(row["api_enabled"]), product,
                   Plan(row["plan_type"], row["plan_contribution"]), parse_time(row["created_at"]))


def _key(row: Row) -> ApiKey:
    return ApiKey(row["key_id"], row["company_id"], row["secret_hash"], frozenset(json.loads(row["permissions"])),
                  bool(row["enabled"]), row["name"], parse_time(row["created_at"]))


def _integration(row: Row) -> Integration:
    return Integration(row["id"], row["company_id"], row["name"], row["status"], row["last_sync_id"],
                       _t(row["last_synced_at"]), row["added"], row["updated"], row["offboarded"],
                       json.loads(row["errors"]) if row["errors"] else None, parse_time(row["created_at"]))


def _employee(row: Row, ticket: TicketRef | None) -> Employee:
    profile = Profile(row["first_name"], row["last_name"], row["email"], row["profile_image"], _d(row["date_of_birth"]),
                      Plan(row["plan_type"], row["plan_contribution"], row["contract_signing_status"]))
    hr = HrData(date.fromisoformat(row["start_at"]), _d(row["termination_date"]), _d(row["offboarded_on"]),
                tuple((date.fromisoformat(a), _d(b)) for a, b in json.loads(row["absences"])))
    dates = Dates(date.fromisoformat(row["start_at"]), _d(row["paused_at"]), _d(row["reactivated_at"]),
                  _d(row["cancelled_at"]))
    return Employee(row["id"], row["company_id"], row["integration_id"], row["hr_id"], profile, hr, row["status"],
                    dates, _d(row["next_ticket_at"]), row["last_sync_id"], _t(row["last_synced"]),
                    parse_time(row["created_at"]), parse_time(row["updated_at"]), ticket)


def _ticket(row: Row) -> TicketRef:
    return TicketRef(row["ticket_id"], Month.parse(row["month"]), date.fromisoformat(row["valid_from"]),
                     date.fromisoformat(row["valid_until"]))


def _document(row: Row) -> Document:
    return Document(row["id"], row["company_id"], row["employee_id"], row["ticket_id"], Month.parse(row["month"]),
                    row["name"], row["file_type"], bool(row["downloadable"]), parse_time(row["created_at"]),
                    parse_time(row["updated_at"]))


def _endpoint(row: Row) -> Endpoint:
    return Endpoint(row["id"], row["company_id"], row["url"], tuple(json.loads(row["event_types"])), row["secret"],
                    bool(row["enabled"]), _t(row["failing_since"]), _t(row["disabled_at"]), row["disabled_reason"],
                    parse_time(row["created_at"]))


def _delivery(row: Row) -> Delivery:
    keys = row.keys()
    return Delivery(row["id"], row["endpoint_id"], row["event_id"], row["type"], row["order_key"], row["status"],
                    row["attempts"], _t(row["next_attempt_at"]), row["last_status_code"], row["last_error"],
                    parse_time(row["created_at"]), _t(row["finished_at"]),
                    row["body"].encode("utf-8") if "body" in keys else b"",
                    row["url"] if "url" in keys else "", row["secret"] if "secret" in keys else "")


_EMPLOYEE_WRITE = ("first_name", "last_name", "email", "profile_image", "date_of_birth", "plan_type",
                   "plan_contribution", "contract_signing_status", "start_at", "termination_date", "offboarded_on",
                   "absences", "status", "paused_at", "reactivated_at", "cancelled_at", "next_ticket_at")


def _moved_on(attempt: Attempt) -> tuple[Any, ...]:
    """A delivery's new (status, next_attempt_at, last_status_code, last_error, finished_at, id)."""
    status = "delivered" if attempt.ok else ("pending" if attempt.next_attempt_at is not None else "failed")
    return (status, ts(attempt.next_attempt_at) if status == "pending" else None, attempt.status_code, attempt.error,
            ts(attempt.at) if status != "pending" else None, attempt.delivery.id)


def _employee_values(change: Change, next_ticket_at: date | None) -> tuple[Any, ...]:
    p, hr, d = change.profile, change.hr, change.dates
    return (p.first_name, p.last_name, p.email, p.profile_image, _day(p.date_of_birth), p.plan.type,
            p.plan.contribution, p.plan.contract_signing_status, _day(hr.start_at), _day(hr.termination_date),
            _day(hr.offboarded_on), _json([[_day(a), _day(b)] for a, b in hr.absences]), change.after,
            _day(d.paused_at), _day(d.reactivated_at), _day(d.cancelled_at), _day(next_ticket_at))


class B2BStore:
    def __init__(self, db: Database):
        self.db = db

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.db.query(sql, params)
        return rows[0] if rows else None

    @staticmethod
    def _insert_id(tx: Tx, sql: str, params: Sequence[Any]) -> int:
        [row] = tx.returning(sql + " RETURNING id", [params])
        return int(row["id"])

    # --- companies, keys, integrations, endpoints (the operator's) --------------------------

    def add_company(self, name: str, product: Product, plan: Plan, now: datetime, *, api_enabled: bool = True) -> int:
        with self.db.transaction() as tx:
            return self._insert_id(tx, "INSERT INTO b2b_companies(name, api_enabled, product_id, category, zones, modes, "
                                       "fare, plan_type, plan_contribution, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   (name, int(api_enabled), product.product_id, product.category, _json(product.zones),
                                    _json(product.modes), _json(product.fare), plan.type, plan.contribution, ts(now)))

    def get_company(self, company_id: int) -> Company | None:
        row = self._one("SELECT * FROM b2b_companies WHERE id = ?", (company_id,))
        return _company(row) if row else None

    def list_companies(self) -> list[Company]:
        return [_company(r) for r in self.db.query("SELECT * FROM b2b_companies ORDER BY id")]

    def set_company_api(self, company_id: int, enabled: bool) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("UPDATE b2b_companies SET api_enabled = ? WHERE id = ?", (int(enabled), company_id)) > 0

    def add_api_key(self, key: ApiKey) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO b2b_api_keys(key_id, company_id, secret_hash, permissions, enabled, name, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (key.key_id, key.company_id, key.secret_hash,
                                                        _json(sorted(key.permissions)), int(key.enabled), key.name,
                                                        ts(key.created_at)))

    def get_api_key(self, key_id: str) -> ApiKey | None:
        row = self._one("SELECT * FROM b2b_api_keys WHERE key_id = ?", (key_id,))
        return _key(row) if row else None

    def list_api_keys(self, company_id: int) -> list[ApiKey]:
        return [_key(r) for r in self.db.query("SELECT * FROM b2b_api_keys WHERE company_id = ? ORDER BY created_at, "
                                               "key_id", (company_id,))]

    def set_api_key(self, key_id: str, *, enabled: bool | None = None, permissions: Iterable[str] | None = None) -> bool:
        with self.db.transaction() as tx:
            changed = 0
            if enabled is not None:
                changed = tx.execute("UPDATE b2b_api_keys SET enabled = ? WHERE key_id = ?", (int(enabled), key_id))
            if permissions is not None:
                changed = tx.execute("UPDATE b2b_api_keys SET permissions = ? WHERE key_id = ?",
                                     (_json(sorted(set(permissions))), key_id))
            return changed > 0

    def add_integration(self, company_id: int, name: str, now: datetime) -> int:
        with self.db.transaction() as tx:
            return self._insert_id(tx, "INSERT INTO b2b_hr_integrations(company_id, name, status, created_at) "
                                       "VALUES (?, ?, 'INITIAL SYNC PENDING', ?)", (company_id, name, ts(now)))

    def get_integration(self, integration_id: int) -> Integration | None:
        row = self._one("SELECT * FROM b2b_hr_integrations WHERE id = ?", (integration_id,))
        return _integration(row) if row else None

    def list_integrations(self, company_id: int, query: Query) -> tuple[list[Integration], int]:
        column, order = INTEGRATION_SORT[query.sort_field], ORDERS[query.sort_order]
        total = self.db.query("SELECT count(*) AS n FROM b2b_hr_integrations WHERE company_id = ?",
                              (company_id,))[0]["n"]
        rows = self.db.query(f"SELECT * FROM b2b_hr_integrations WHERE company_id = ? ORDER BY {column} {order}, "
                             f"id {order} LIMIT ? OFFSET ?", (company_id, query.limit, query.offset))
        return [_integration(r) for r in rows], total

    def add_endpoint(self, company_id: int, url: str, event_types: Sequence[str], secret: str, now: datetime) -> int:
        with self.db.transaction() as tx:
            return self._insert_id(tx, "INSERT INTO b2b_webhook_endpoints(company_id, url, event_types, secret, enabled, "
                                       "created_at) VALUES (?, ?, ?, ?, 1, ?)",
                                   (company_id, url, _json(list(event_types)), secret, ts(now)))

    def get_endpoint(self, endpoint_id: int) -> Endpoint | None:
        row = self._one("SELECT * FROM b2b_webhook_endpoints WHERE id = ?", (endpoint_id,))
        return _endpoint(row) if row else None

    def list_endpoints(self, company_id: int | None = None) -> list[Endpoint]:
        if company_id is None:
            return [_endpoint(r) for r in self.db.query("SELECT * FROM b2b_webhook_endpoints ORDER BY id")]
        return [_endpoint(r) for r in self.db.query("SELECT * FROM b2b_webhook_endpoints WHERE company_id = ? "
                                                    "ORDER BY id", (company_id,))]

    def set_endpoint_enabled(self, endpoint_id: int, enabled: bool, now: datetime) -> bool:
        """Enabling clears the failure record and makes what it missed due at once."""
        with self.db.transaction() as tx:
            if not enabled:
                return tx.execute("UPDATE b2b_webhook_endpoints SET enabled = 0, disabled_at = ?, disabled_reason = "
                                  "'disabled by the operator' WHERE id = ?", (ts(now), endpoint_id)) > 0
            changed = tx.execute("UPDATE b2b_webhook_endpoints SET enabled = 1, failing_since = NULL, disabled_at = NULL, "
                                 "disabled_reason = NULL WHERE id = ?", (endpoint_id,))
            tx.execute("UPDATE b2b_deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND status = 'pending'",
                       (ts(now), endpoint_id))
            return changed > 0

    # --- employees --------------------------------------------------------------------------

    @staticmethod
    def _tickets_of(query: Query_, employee_ids: Sequence[int]) -> dict[int, TicketRef]:
        latest: dict[int, TicketRef] = {}
        for start in range(0, len(employee_ids), _IN_CHUNK):
            chunk = list(employee_ids[start:start + _IN_CHUNK])
            for row in query(f"SELECT employee_id, ticket_id, month, valid_from, valid_until FROM b2b_tickets "
                             f"WHERE revoked_at IS NULL AND employee_id IN ({_marks(len(chunk))}) ORDER BY month", chunk):
                latest[row["employee_id"]] = _ticket(row)
        return latest

    def _employees(self, rows: list[Row], query: Query_ | None = None) -> list[Employee]:
        tickets = self._tickets_of(query or self.db.query, [r["id"] for r in rows])
        return [_employee(r, tickets.get(r["id"])) for r in rows]

    def get_employee(self, company_id: int, employee_id: int) -> Employee | None:
        rows = self.db.query("SELECT * FROM b2b_employees WHERE id = ? AND company_id = ?", (employee_id, company_id))
        return self._employees(rows)[0] if rows else None

    def list_employees(self, company_id: int, query: Query) -> tuple[list[Employee], int]:
        column, order = EMPLOYEE_SORT[query.sort_field], ORDERS[query.sort_order]
        where, params = ["company_id = ?"], [company_id]
        f = query.filters
        if f.get("status"):
            where.append(f"status IN ({_marks(len(f['status']))})")
            params += f["status"]
        if f.get("planType"):
            where.append("plan_type = ?")
            params.append(f["planType"])
        if f.get("email"):
            where.append("lower(email) = lower(?)")
            params.append(f["email"])
        if f.get("ids"):
            where.append(f"id IN ({_marks(len(f['ids']))})")
            params += f["ids"]
        sql_where = " AND ".join(where)
        total = self.db.query(f"SELECT count(*) AS n FROM b2b_employees WHERE {sql_where}", params)[0]["n"]
        rows = self.db.query(f"SELECT * FROM b2b_employees WHERE {sql_where} ORDER BY {column} {order}, id {order} "
                             "LIMIT ? OFFSET ?", [*params, query.limit, query.offset])
        return self._employees(rows), total

    def integration_employees(self, integration_id: int) -> list[Employee]:
        return self._employees(self.db.query("SELECT * FROM b2b_employees WHERE integration_id = ?", (integration_id,)))

    def live_employees(self) -> list[Employee]:
        """Every employee whose subscription can still change with the day (not cancelled)."""
        return self._employees(self.db.query("SELECT * FROM b2b_employees WHERE status <> 'cancelled' ORDER BY id"))

    def ticketed(self, month: Month, employee_ids: Sequence[int]) -> set[int]:
        """Which of ``employee_ids`` have a live ticket for ``month`` (a read to skip needless
        signing; the unique index, not this, decides)."""
        found: set[int] = set()
        for start in range(0, len(employee_ids), _IN_CHUNK):
            chunk = list(employee_ids[start:start + _IN_CHUNK])
            found |= {r["employee_id"] for r in self.db.query(
                f"SELECT employee_id FROM b2b_tickets WHERE month = ? AND revoked_at IS NULL AND employee_id IN "
                f"({_marks(len(chunk))})", [str(month), *chunk])}
        return found

    def ticket_mtb(self, company_id: int, employee_id: int) -> tuple[TicketRef, str] | None:
        row = self._one("SELECT b.ticket_id, b.month, b.valid_from, b.valid_until, t.mtb FROM b2b_tickets b "
                        "JOIN b2b_employees e ON e.id = b.employee_id JOIN tickets t ON t.ticket_id = b.ticket_id "
                        "WHERE e.id = ? AND e.company_id = ? AND b.revoked_at IS NULL ORDER BY b.month DESC LIMIT 1",
                        (employee_id, company_id))
        return (_ticket(row), row["mtb"]) if row else None

    # --- HR sync ----------------------------------------------------------------------------

    def sync_hash(self, integration_id: int, sync_id: str) -> str | None:
        row = self._one("SELECT body_hash FROM b2b_hr_syncs WHERE integration_id = ? AND sync_id = ?",
                        (integration_id, sync_id))
        return row["body_hash"] if row else None

    def apply_sync(self, integration: Integration, sync_id: str, body_hash: str,
                   decide: Callable[[list[Employee]], tuple[SyncPlan, list[Planned]]], now: datetime) -> SyncPlan:
        """Apply an HR sync in one transaction under the company's lock: the sync record (its
        primary key makes a concurrent twin with the same ``syncId`` fail with DuplicateSync),
        then ``decide`` (pure) plans the changes from the integration's employees as read
        inside this transaction (it may raise: nothing is applied), then the employees, the
        revocations the plan schedules or withdraws, the webhook events and the counts."""
        with self.db.transaction() as tx:
            tx.serialize(company_lock(integration.company_id))
            added = tx.execute("INSERT INTO b2b_hr_syncs(integration_id, sync_id, body_hash, received_at, added, updated, "
                               "offboarded) VALUES (?, ?, ?, ?, 0, 0, 0) ON CONFLICT DO NOTHING",
                               (integration.id, sync_id, body_hash, ts(now)))
            if not added:
                raise DuplicateSync(sync_id)
            employees = self._employees(tx.query("SELECT * FROM b2b_employees WHERE integration_id = ? ORDER BY id",
                                                 (integration.id,)), tx.query)
            plan, planned = decide(employees)
            counts = summary(plan)
            self._write_planned(tx, integration, planned, sync_id, now)
            tx.execute("UPDATE b2b_hr_syncs SET added = ?, updated = ?, offboarded = ? WHERE integration_id = ? AND "
                       "sync_id = ?", (counts["added"], counts["updated"], counts["offboarded"], integration.id, sync_id))
            tx.execute("UPDATE b2b_hr_integrations SET status = 'SYNCED', last_sync_id = ?, last_synced_at = ?, "
                       "added = ?, updated = ?, offboarded = ?, errors = NULL WHERE id = ?",
                       (sync_id, ts(now), counts["added"], counts["updated"], counts["offboarded"], integration.id))
            if plan.unchanged:
                tx.execute("UPDATE b2b_employees SET last_sync_id = ?, last_synced = ? WHERE integration_id = ? "
                           "AND offboarded_on IS NULL", (sync_id, ts(now), integration.id))
            return plan

    def record_sync_error(self, integration_id: int, errors: list[dict[str, Any]], now: datetime) -> None:
        """A refused sync leaves its errors on the integration (``GET /hr-integrations/{id}``),
        and a line in the integration's sync runs (the operator console lists them); the newest
        ``SYNC_FAILURES_KEPT`` of those lines are kept (a partner may send a refused sync 100
        times a minute, all day)."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE b2b_hr_integrations SET errors = ?, status = CASE WHEN last_sync_id IS NULL "
                       "THEN status ELSE 'SYNC FAILED' END WHERE id = ?", (_json(errors[:20]), integration_id))
            tx.execute("INSERT INTO b2b_hr_sync_failures(integration_id, received_at, errors) VALUES (?, ?, ?)",
                       (integration_id, ts(now), _json(errors[:20])))
            tx.execute("DELETE FROM b2b_hr_sync_failures WHERE integration_id = ? AND id NOT IN (SELECT id FROM "
                       "b2b_hr_sync_failures WHERE integration_id = ? ORDER BY id DESC LIMIT ?)",
                       (integration_id, integration_id, SYNC_FAILURES_KEPT))

    def list_syncs(self, integration_id: int, offset: int, limit: int) -> tuple[list[SyncRun], int]:
        """The integration's HR syncs, newest first: those applied, with their counts, and those
        refused, with their errors."""
        total = self.db.query("SELECT (SELECT count(*) FROM b2b_hr_syncs WHERE integration_id = ?) + "
                              "(SELECT count(*) FROM b2b_hr_sync_failures WHERE integration_id = ?) AS n",
                              (integration_id, integration_id))[0]["n"]
        rows = self.db.query(
            "SELECT received_at, sync_id, added, updated, offboarded, CAST(NULL AS TEXT) AS errors, 0 AS id "
            "FROM b2b_hr_syncs WHERE integration_id = ? UNION ALL "
            "SELECT received_at, CAST(NULL AS TEXT) AS sync_id, 0 AS added, 0 AS updated, 0 AS offboarded, errors, id "
            "FROM b2b_hr_sync_failures WHERE integration_id = ? "
            "ORDER BY received_at DESC, id DESC LIMIT ? OFFSET ?", (integration_id, integration_id, limit, offset))
        return [SyncRun(parse_time(r["received_at"]), r["sync_id"], r["added"], r["updated"], r["offboarded"],
                        json.loads(r["errors"]) if r["errors"] is not None else None) for r in rows], int(total)

    def _write_planned(self, tx: Tx, integration: Integration, planned: Sequence[Planned], sync_id: str | None,
                       now: datetime) -> None:
        """Write the planned changes, their revocations and their webhook events in ``tx``, a
        statement for all rows of a kind (one pipelined round trip each on PostgreSQL, not one
        per employee: 10,000 new employees are a handful of statements)."""
        stamp = ts(now)
        adds = [item for item in planned if item.change.kind == "add"]
        added = tx.returning(
            f"INSERT INTO b2b_employees(company_id, integration_id, hr_id, {', '.join(_EMPLOYEE_WRITE)}, last_sync_id, "
            f"last_synced, created_at, updated_at) VALUES ({_marks(len(_EMPLOYEE_WRITE) + 7)}) RETURNING id",
            [(integration.company_id, integration.id, item.change.hr_id,
              *_employee_values(item.change, item.next_ticket_at), sync_id, stamp, stamp, stamp) for item in adds])
        new_ids = {item.change.hr_id: int(row["id"]) for item, row in zip(adds, added)}  # type: ignore[index]
        updates = [item for item in planned if item.change.kind != "add"]
        sets = ", ".join(f"{c} = ?" for c in _EMPLOYEE_WRITE)
        sync = ", last_sync_id = ?, last_synced = ?" if sync_id is not None else ""
        tx.executemany(f"UPDATE b2b_employees SET {sets}{sync}, updated_at = ? WHERE id = ?",
                       [(*_employee_values(item.change, item.next_ticket_at),
                         *((sync_id, stamp) if sync_id is not None else ()), stamp, item.change.employee_id)
                        for item in updates])
        self._schedule_revocations(tx, updates, now)
        events = []
        for item in planned:
            change = item.change
            if change.subscription_changed:
                employee_id = change.employee_id if change.employee_id is not None else new_ids[change.hr_id]
                events.append((employee_id, subscription_event_payload(employee_id, change.after, change.dates,
                                                                       item.next_ticket_at), now))
        self._enqueue(tx, integration.company_id, webhooks.SUBSCRIPTION_CHANGED, events)

    @staticmethod
    def _schedule_revocations(tx: Tx, updates: Sequence[Planned], now: datetime) -> None:
        """A cancellation revokes the employee's live tickets at ``revoke_at`` (the end of the
        last covered day; now when offboarded); a withdrawn cancellation withdraws them."""
        tx.executemany("DELETE FROM b2b_revocations WHERE employee_id = ? AND done_at IS NULL",
                       [(item.change.employee_id,) for item in updates if item.revoke_at is None])
        tx.executemany("INSERT INTO b2b_revocations(ticket_id, employee_id, due_at, reason) "
                       "SELECT ticket_id, employee_id, ?, ? FROM b2b_tickets WHERE employee_id = ? AND revoked_at IS NULL "
                       "ON CONFLICT (ticket_id) DO UPDATE SET due_at = excluded.due_at, reason = excluded.reason "
                       "WHERE b2b_revocations.done_at IS NULL",
                       [(ts(max(item.revoke_at, now)), item.change.event or "cancel", item.change.employee_id)
                        for item in updates if item.revoke_at is not None])

    def refresh_company(self, company_id: int, decide: Callable[[list[Employee]], tuple[list[Planned], T]],
                        now: datetime) -> T:
        """The roll-over's own changes to a company's subscriptions (dates reached), under the
        company's lock: ``decide`` (pure) gets the live employees as read in this transaction
        and returns the changes to write and what the caller wants back."""
        with self.db.transaction() as tx:
            tx.serialize(company_lock(company_id))
            employees = self._employees(tx.query("SELECT * FROM b2b_employees WHERE company_id = ? AND status <> "
                                                 "'cancelled' ORDER BY id", (company_id,)), tx.query)
            planned, result = decide(employees)
            integration = Integration(0, company_id, "", "", None, None, 0, 0, 0, None, now)
            self._write_planned(tx, integration, planned, None, now)
            return result

    # --- monthly tickets and documents ------------------------------------------------------

    def issue_tickets(self, company_id: int, new: Sequence[NewTicket], due: Callable[[Employee], IssueTerms | None],
                      actor: str, now: datetime) -> list[NewTicket]:
        """Store month tickets signed outside any lock, one transaction for the batch, under the
        company's lock: a ticket is stored only if ``due`` (pure) says its employee, as stored
        now, still gets it (a sync may have offboarded them since), and only if the employee has
        no live ticket for that month: the unique index decides, so a ticket another roll-over
        stored first wins and this one is dropped, never stored. Each stored ticket's Ticket
        API records (:func:`~server.store.core.write_issues`), the employee's ``nextTicketAt``,
        the revocation a scheduled cancellation needs, and its document's render job, together.
        Returns the tickets stored."""
        if not new:
            return []
        with self.db.transaction() as tx:
            tx.serialize(company_lock(company_id))
            ids = sorted({n.employee_id for n in new})
            rows = tx.query(f"SELECT * FROM b2b_employees WHERE company_id = ? AND id IN ({_marks(len(ids))})",
                            [company_id, *ids])
            terms = {e.id: t for e in (_employee(r, None) for r in rows) if (t := due(e)) is not None}
            wanted = [n for n in new if n.employee_id in terms]
            inserted = tx.returning(
                "INSERT INTO b2b_tickets(employee_id, month, ticket_id, valid_from, valid_until, issued_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                [(n.employee_id, str(n.ref.month), n.ref.ticket_id, _day(n.ref.valid_from), _day(n.ref.valid_until),
                  ts(now)) for n in wanted])
            won = [n for n, row in zip(wanted, inserted) if row is not None]
            write_issues(tx, [(n.bundle, n.records) for n in won], actor=actor)
            tx.executemany("UPDATE b2b_employees SET next_ticket_at = ?, updated_at = ? WHERE id = ?",
                           [(_day(terms[n.employee_id].next_ticket_at), ts(now), n.employee_id) for n in won])
            tx.executemany("INSERT INTO b2b_revocations(ticket_id, employee_id, due_at, reason) VALUES (?, ?, ?, "
                           "'schedule-cancellation') ON CONFLICT DO NOTHING",
                           [(n.ref.ticket_id, n.employee_id, ts(terms[n.employee_id].revoke_at)) for n in won
                            if terms[n.employee_id].revoke_at is not None])
            tx.executemany("INSERT INTO b2b_render_jobs(ticket_id, company_id, employee_id, created_at) "
                           "VALUES (?, ?, ?, ?)", [(n.ref.ticket_id, company_id, n.employee_id, ts(now)) for n in won])
            return won

    # --- queues shared by processes: claimed with a lease -------------------------------------

    @staticmethod
    def _claim(tx: Tx, table: str, key: str, keys: Sequence[Any], worker: str, lease_until: datetime,
               extra: str = "") -> None:
        if keys:
            tx.execute(f"UPDATE {table} SET claimed_by = ?, claimed_until = ?{extra} WHERE {key} IN "
                       f"({_marks(len(keys))})", [worker, ts(lease_until), *keys])

    def claim_revocations(self, now: datetime, worker: str, clock: datetime, lease: timedelta,
                          limit: int = 500) -> list[tuple[str, str]]:
        """(ticketId, reason) of revocations due at ``now``, oldest first, claimed by ``worker``
        until ``clock + lease`` (``clock``: the wall clock, which every process shares)."""
        with self.db.transaction() as tx:
            rows = tx.claim_rows("SELECT ticket_id, reason FROM b2b_revocations WHERE done_at IS NULL AND due_at <= ? "
                                 "AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY due_at, ticket_id LIMIT ?",
                                 (ts(now), ts(clock), limit))
            self._claim(tx, "b2b_revocations", "ticket_id", [r["ticket_id"] for r in rows], worker, clock + lease)
            return [(r["ticket_id"], r["reason"]) for r in rows]

    def mark_revoked(self, ticket_id: str, now: datetime) -> None:
        """After the Ticket API revoked it: the revocation is done, the ticket no longer live,
        its document no longer downloadable."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE b2b_revocations SET done_at = ?, claimed_by = NULL, claimed_until = NULL "
                       "WHERE ticket_id = ?", (ts(now), ticket_id))
            tx.execute("UPDATE b2b_tickets SET revoked_at = ? WHERE ticket_id = ? AND revoked_at IS NULL",
                       (ts(now), ticket_id))
            tx.execute("UPDATE b2b_documents SET downloadable = 0, updated_at = ? WHERE ticket_id = ?", (ts(now), ticket_id))

    _RENDER = ("SELECT j.ticket_id, j.company_id, j.employee_id, j.created_at, j.attempts, b.month, b.valid_from, "
               "b.valid_until, e.first_name, e.last_name, c.name AS company_name, c.zones, c.modes, t.mtb "
               "FROM b2b_render_jobs j JOIN b2b_tickets b ON b.ticket_id = j.ticket_id "
               "JOIN b2b_employees e ON e.id = j.employee_id JOIN b2b_companies c ON c.id = j.company_id "
               "JOIN tickets t ON t.ticket_id = j.ticket_id ")

    def claim_render_jobs(self, worker: str, clock: datetime, lease: timedelta, limit: int) -> list[RenderJob]:
        """Documents to render, oldest first, claimed by ``worker`` until ``clock + lease``."""
        with self.db.transaction() as tx:
            keys = [r["ticket_id"] for r in tx.claim_rows(
                "SELECT ticket_id FROM b2b_render_jobs WHERE claimed_until IS NULL OR claimed_until <= ? "
                "ORDER BY created_at, ticket_id LIMIT ?", (ts(clock), limit))]
            if not keys:
                return []
            self._claim(tx, "b2b_render_jobs", "ticket_id", keys, worker, clock + lease, ", attempts = attempts + 1")
            rows = tx.query(self._RENDER + f"WHERE j.ticket_id IN ({_marks(len(keys))}) ORDER BY j.created_at, "
                                           "j.ticket_id", keys)
        return [RenderJob(r["ticket_id"], r["company_id"], r["employee_id"], Month.parse(r["month"]),
                          date.fromisoformat(r["valid_from"]), date.fromisoformat(r["valid_until"]),
                          f"{r['first_name']} {r['last_name']}", r["company_name"], tuple(json.loads(r["zones"])),
                          tuple(json.loads(r["modes"])), r["mtb"], parse_time(r["created_at"]), r["attempts"])
                for r in rows]

    def store_documents(self, rendered: Sequence[tuple[RenderJob, str, bytes]]) -> list[Document]:
        """Rendered documents (job, name, PDF), each with its ``new-employee-document-generated``
        event, in one transaction; the jobs are done. A document stored before (a lease ran
        out and two processes rendered it) is not stored again. Its ticket revoked meanwhile:
        stored, not downloadable."""
        if not rendered:
            return []
        with self.db.transaction() as tx:
            rows = tx.returning(
                "INSERT INTO b2b_documents(company_id, employee_id, ticket_id, month, name, file_type, downloadable, "
                "content, created_at, updated_at) SELECT ?, ?, ?, ?, ?, 'pdf', CASE WHEN revoked_at IS NULL THEN 1 "
                "ELSE 0 END, ?, ?, ? FROM b2b_tickets WHERE ticket_id = ? ON CONFLICT DO NOTHING "
                "RETURNING id, downloadable",
                [(job.company_id, job.employee_id, job.ticket_id, str(job.month), name, pdf, ts(job.created_at),
                  ts(job.created_at), job.ticket_id) for job, name, pdf in rendered])
            tx.executemany("DELETE FROM b2b_render_jobs WHERE ticket_id = ?", [(job.ticket_id,) for job, _, _ in rendered])
            stored = [Document(row["id"], job.company_id, job.employee_id, job.ticket_id, job.month, name, "pdf",
                               bool(row["downloadable"]), job.created_at, job.created_at)
                      for (job, name, _), row in zip(rendered, rows) if row is not None]
            for company_id in sorted({d.company_id for d in stored}):
                self._enqueue(tx, company_id, webhooks.DOCUMENT_GENERATED,
                              [(d.employee_id, document_event_payload(d), d.created_at) for d in stored
                               if d.company_id == company_id])
        return stored

    def render_failed(self, job: RenderJob, error: str, retry_at: datetime) -> None:
        """A render that failed is tried again at ``retry_at`` (wall clock); the error is kept."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE b2b_render_jobs SET last_error = ?, claimed_by = NULL, claimed_until = ? "
                       "WHERE ticket_id = ?", (error[:500], ts(retry_at), job.ticket_id))

    def pending_documents(self) -> int:
        return self.db.query("SELECT count(*) AS n FROM b2b_render_jobs")[0]["n"]

    def get_document(self, company_id: int, document_id: int) -> Document | None:
        row = self._one("SELECT id, company_id, employee_id, ticket_id, month, name, file_type, downloadable, created_at, "
                        "updated_at FROM b2b_documents WHERE id = ? AND company_id = ?", (document_id, company_id))
        return _document(row) if row else None

    def document_content(self, company_id: int, document_id: int) -> bytes | None:
        row = self._one("SELECT content FROM b2b_documents WHERE id = ? AND company_id = ?", (document_id, company_id))
        return bytes(row["content"]) if row and row["content"] is not None else None

    def list_documents(self, company_id: int, query: Query) -> tuple[list[Document], int]:
        column, order = DOCUMENT_SORT[query.sort_field], ORDERS[query.sort_order]
        where, params = ["company_id = ?"], [company_id]
        for name, clause in (("employeeId", "employee_id = ?"), ("ticketMonth", "month = ?")):
            if query.filters.get(name) is not None:
                where.append(clause)
                params.append(query.filters[name])
        sql_where = " AND ".join(where)
        total = self.db.query(f"SELECT count(*) AS n FROM b2b_documents WHERE {sql_where}", params)[0]["n"]
        rows = self.db.query(f"SELECT id, company_id, employee_id, ticket_id, month, name, file_type, downloadable, "
                             f"created_at, updated_at FROM b2b_documents WHERE {sql_where} ORDER BY {column} {order}, "
                             f"id {order} LIMIT ? OFFSET ?", [*params, query.limit, query.offset])
        return [_document(r) for r in rows], total

    # --- webhooks ---------------------------------------------------------------------------

    def _enqueue(self, tx: Tx, company_id: int, event_type: str,
                 events: Sequence[tuple[int | None, dict[str, Any], datetime]]) -> None:
        """Events ``(employeeId, payload, at)`` in this order, and a delivery of each to every
        endpoint of the company, enabled or not, that takes its type (a disabled endpoint gets
        it when re-enabled), in the caller's transaction."""
        if not events:
            return
        endpoints = [r["id"] for r in tx.query("SELECT id, event_types FROM b2b_webhook_endpoints WHERE company_id = ?",
                                               (company_id,)) if event_type in json.loads(r["event_types"])]
        if not endpoints:
            return
        made = [(str(uuid.uuid4()), employee_id, payload, at) for employee_id, payload, at in events]
        rows = tx.returning("INSERT INTO b2b_webhook_events(event_id, company_id, type, employee_id, created_at, body) "
                            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                            [(event_id, company_id, event_type, employee_id, ts(at),
                              webhooks.envelope(event_id, event_type, int(at.timestamp()), payload).decode("utf-8"))
                             for event_id, employee_id, payload, at in made])
        tx.executemany("INSERT INTO b2b_deliveries(endpoint_id, event_row, order_key, status, next_attempt_at, "
                       "created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                       [(endpoint_id, row["id"],  # type: ignore[index]
                         f"employee:{employee_id}" if employee_id is not None else f"event:{event_id}", ts(at), ts(at))
                        for (event_id, employee_id, _, at), row in zip(made, rows) for endpoint_id in endpoints])

    _DELIVERY = ("SELECT d.*, ev.event_id, ev.type, ev.body, e.url, e.secret FROM b2b_deliveries d "
                 "JOIN b2b_webhook_events ev ON ev.id = d.event_row JOIN b2b_webhook_endpoints e ON e.id = d.endpoint_id ")

    def claim_deliveries(self, now: datetime, limit: int, worker: str, clock: datetime,
                         lease: timedelta) -> list[Delivery]:
        """Deliveries due at ``now`` to enabled endpoints, each the oldest unfinished one of its
        endpoint and employee (so events reach a receiver in order per employee: the next one
        waits while this one is pending, claimed or not), claimed by ``worker`` until
        ``clock + lease`` (the wall clock), so several processes send without sending one twice."""
        with self.db.transaction() as tx:
            keys = [r["id"] for r in tx.claim_rows(
                "SELECT d.id FROM b2b_deliveries d JOIN b2b_webhook_endpoints e ON e.id = d.endpoint_id "
                "WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND e.enabled = 1 AND (d.claimed_until IS NULL "
                "OR d.claimed_until <= ?) AND NOT EXISTS (SELECT 1 AS one FROM b2b_deliveries p WHERE p.endpoint_id = "
                "d.endpoint_id AND p.order_key = d.order_key AND p.status = 'pending' AND p.id < d.id) "
                "ORDER BY d.next_attempt_at, d.id LIMIT ?", (ts(now), ts(clock), limit), of="d")]
            if not keys:
                return []
            self._claim(tx, "b2b_deliveries", "id", keys, worker, clock + lease)
            rows = tx.query(self._DELIVERY + f"WHERE d.id IN ({_marks(len(keys))}) ORDER BY d.next_attempt_at, d.id",
                            keys)
        return [_delivery(r) for r in rows]

    def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Log a round's attempts and move each delivery on, in one transaction: delivered on a
        2xx, else due again at ``next_attempt_at`` (None: failed for good). An endpoint with a
        success in the round is working again; one whose every attempt failed for a day is
        disabled."""
        if not attempts:
            return
        with self.db.transaction() as tx:
            tx.executemany("INSERT INTO b2b_delivery_attempts(delivery_id, at, status_code, error, duration_ms) "
                           "VALUES (?, ?, ?, ?, ?)",
                           [(a.delivery.id, ts(a.at), a.status_code, a.error, a.duration_ms) for a in attempts])
            tx.executemany("UPDATE b2b_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, "
                           "last_status_code = ?, last_error = ?, finished_at = ?, claimed_by = NULL, "
                           "claimed_until = NULL WHERE id = ?", [_moved_on(a) for a in attempts])
            working = {a.delivery.endpoint_id for a in attempts if a.ok}
            failing: dict[int, Attempt] = {}
            for a in attempts:
                if a.delivery.endpoint_id not in working:
                    failing.setdefault(a.delivery.endpoint_id, a)  # the first failure; the last for the reason
            tx.executemany("UPDATE b2b_webhook_endpoints SET failing_since = NULL WHERE id = ?",
                           [(endpoint_id,) for endpoint_id in sorted(working)])
            tx.executemany("UPDATE b2b_webhook_endpoints SET failing_since = coalesce(failing_since, ?) WHERE id = ?",
                           [(ts(a.at), endpoint_id) for endpoint_id, a in sorted(failing.items())])
            if not failing:
                return
            last = {a.delivery.endpoint_id: a for a in attempts if a.delivery.endpoint_id in failing}
            rows = tx.query(f"SELECT id, failing_since FROM b2b_webhook_endpoints WHERE id IN "
                            f"({_marks(len(failing))})", sorted(failing))
            tx.executemany("UPDATE b2b_webhook_endpoints SET enabled = 0, disabled_at = ?, disabled_reason = ? "
                           "WHERE id = ? AND enabled = 1",
                           [(ts(last[r["id"]].at), f"every delivery failed for 24 h (last: "
                             f"{last[r['id']].error or last[r['id']].status_code})", r["id"]) for r in rows
                            if webhooks.should_disable(_t(r["failing_since"]), last[r["id"]].at)])

    def deliveries(self, endpoint_id: int, limit: int = 100, offset: int = 0,
                   status: str | None = None) -> list[Delivery]:
        """The delivery log of an endpoint, newest first (``status``: only pending, delivered or
        failed ones)."""
        where, params = ("AND d.status = ? ", [endpoint_id, status]) if status else ("", [endpoint_id])
        return [_delivery(r) for r in self.db.query(self._DELIVERY + f"WHERE d.endpoint_id = ? {where}"
                                                    "ORDER BY d.id DESC LIMIT ? OFFSET ?", [*params, limit, offset])]

    def delivery_counts(self, endpoint_id: int) -> dict[str, int]:
        """An endpoint's deliveries by status."""
        return {r["status"]: int(r["n"]) for r in self.db.query(
            "SELECT status, count(*) AS n FROM b2b_deliveries WHERE endpoint_id = ? GROUP BY status", (endpoint_id,))}

    def attempts(self, delivery_id: int) -> list[dict[str, Any]]:
        return self.attempts_of([delivery_id]).get(delivery_id, [])

    def attempts_of(self, delivery_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Every attempt of each delivery, oldest first."""
        found: dict[int, list[dict[str, Any]]] = {}
        for start in range(0, len(delivery_ids), _IN_CHUNK):
            chunk = list(delivery_ids[start:start + _IN_CHUNK])
            for r in self.db.query("SELECT delivery_id, at, status_code, error, duration_ms FROM b2b_delivery_attempts "
                                   f"WHERE delivery_id IN ({_marks(len(chunk))}) ORDER BY id", chunk):
                found.setdefault(r["delivery_id"], []).append(
                    {"at": r["at"], "status_code": r["status_code"], "error": r["error"],
                     "duration_ms": r["duration_ms"]})
        return found

    def retry_delivery(self, endpoint_id: int, delivery_id: int, now: datetime) -> bool:
        """The operator's "retry now": a delivery not yet delivered (pending, or failed for good)
        is due at ``now`` again; failed for good, it gets one more attempt (its 24 h are over).
        False when there is no such delivery of that endpoint, or it was delivered."""
        with self.db.transaction() as tx:
            return tx.execute("UPDATE b2b_deliveries SET status = 'pending', next_attempt_at = ?, finished_at = NULL "
                              "WHERE id = ? AND endpoint_id = ? AND status <> 'delivered'",
                              (ts(now), delivery_id, endpoint_id)) > 0

    def status_counts(self) -> dict[int, dict[str, int]]:
        """Employees by company and subscription status."""
        counts: dict[int, dict[str, int]] = {}
        for r in self.db.query("SELECT company_id, status, count(*) AS n FROM b2b_employees "
                               "GROUP BY company_id, status"):
            counts.setdefault(r["company_id"], {})[r["status"]] = int(r["n"])
        return counts

    def pending_deliveries(self) -> int:
        return self.db.query("SELECT count(*) AS n FROM b2b_deliveries WHERE status = 'pending'")[0]["n"]
