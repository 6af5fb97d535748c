"""What the console reads (and its sessions), in the store's portable SQL over the same
:class:`~server.store.database.Database` (the dialect rules are in that module's docstring).

The ticket state machine and its writes stay the Ticket API's (:mod:`server.ticket_api.tickets`
over :mod:`server.store.core`); this module only reads, except for the console's own sessions.
Each method is one statement or one transaction; call them through the store runner
(``await ctx.run(queries.method, ...)``) so the event loop never waits on a query.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mtb.timeutil import parse_time

from ..store.core import ts
from ..store.database import Database, Row

SEARCH_BY = ("any", "ticket", "traveller", "bundle", "request")
DENY_KINDS = {"ticket": "d.ticket_id IS NOT NULL", "traveller": "d.traveller_id IS NOT NULL",
              "token": "d.token_id IS NOT NULL"}
DENY_STATUSES = ("all", "in-force", "expired")


@dataclass(frozen=True)
class Session:
    entity_id: str
    role: str  # the credential's role now (a changed role ends what the session may do at once)
    csrf: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class TicketRow:
    """A ticket as a search result lists it (no payload, no MTB)."""

    ticket_id: str
    state: str
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime
    product_id: str | None
    traveller_id: str | None
    bundle_id: str
    request_id: str | None


@dataclass(frozen=True)
class TimelineItem:
    """One line of a ticket's story: a change of state (``source`` "change": issue, freeze,
    thaw, refund, revoke ...) or an event a device posted (``source`` "event")."""

    source: str
    item_id: int
    at: datetime
    what: str  # the action, or the event kind (validation, inspection)
    who: str  # the actor, or the credential that posted the event
    result: int | None = None
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    event: dict[str, Any] | None = None  # the stored ticketEvent


@dataclass(frozen=True)
class DenyRow:
    entry_id: int
    ticket_id: str | None
    traveller_id: str | None
    token_id: str | None
    expire: datetime
    reason: str | None  # what put it there (revoke, freeze, thaw ...)
    created_at: datetime
    actor: str | None  # who did it, when a ticket's change of state added it
    note: str | None  # the reason they gave

    @property
    def kind(self) -> str:
        return "ticket" if self.ticket_id else "traveller" if self.traveller_id else "token"

    @property
    def target(self) -> str:
        return self.ticket_id or self.traveller_id or self.token_id or ""


def _timeline_item(row: Row) -> TimelineItem:
    body = row["body"]
    return TimelineItem(source=row["source"], item_id=row["id"], at=parse_time(row["happened"]), what=row["what"],
                        who=row["who"], result=row["result"], from_state=row["from_state"],
                        to_state=row["to_state"], reason=row["reason"],
                        event=json.loads(body) if body is not None else None)


class ConsoleQueries:
    def __init__(self, db: Database):
        self.db = db

    def _count(self, sql: str, params: list[Any]) -> int:
        return int(self.db.query(sql, params)[0]["n"])

    # --- sessions ---------------------------------------------------------------------------

    def create_session(self, token_hash: str, entity_id: str, csrf: str, now: datetime, expires_at: datetime) -> None:
        """A new session; expired ones are cleared on the way (sign-ins are rare, pages are not)."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (ts(now),))
            tx.execute("INSERT INTO console_sessions(token_hash, entity_id, csrf, created_at, seen_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (token_hash, entity_id, csrf, ts(now), ts(now), ts(expires_at)))

    def session(self, token_hash: str, now: datetime) -> Session | None:
        """The live session of that token, with its credential's current role; None when it
        expired, was ended, or its credential was removed."""
        rows = self.db.query("SELECT s.entity_id AS entity_id, s.csrf AS csrf, s.created_at AS created_at, "
                             "s.seen_at AS seen_at, s.expires_at AS expires_at, c.role AS role "
                             "FROM console_sessions s JOIN credentials c ON c.entity_id = s.entity_id "
                             "WHERE s.token_hash = ? AND s.expires_at > ?", (token_hash, ts(now)))
        if not rows:
            return None
        r = rows[0]
        return Session(r["entity_id"], r["role"], r["csrf"], parse_time(r["created_at"]), parse_time(r["seen_at"]),
                       parse_time(r["expires_at"]))

    def touch_session(self, token_hash: str, seen_at: datetime, expires_at: datetime) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE console_sessions SET seen_at = ?, expires_at = ? WHERE token_hash = ?",
                       (ts(seen_at), ts(expires_at), token_hash))

    def end_session(self, token_hash: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM console_sessions WHERE token_hash = ?", (token_hash,))

    # --- tickets ----------------------------------------------------------------------------

    def search_tickets(self, by: str, value: str, offset: int, limit: int) -> tuple[list[TicketRow], int]:
        """Tickets whose id, traveller id, bundle (any bundle that holds it) or request id is
        ``value`` (``by`` "any": whichever matches); an empty value lists every ticket.
        Newest first."""
        in_bundle = "ticket_id IN (SELECT ticket_id FROM bundle_tickets WHERE bundle_id = ?)"
        clauses = {"ticket": "ticket_id = ?", "traveller": "traveller_id = ?", "bundle": in_bundle,
                   "request": "request_id = ?"}
        if not value:
            where, params = "1 = 1", []
        elif by == "any":
            where, params = " OR ".join(clauses.values()), [value] * len(clauses)
        else:
            where, params = clauses[by], [value]  # KeyError = the caller skipped SEARCH_BY
        total = self._count(f"SELECT count(*) AS n FROM tickets WHERE {where}", params)
        rows = self.db.query("SELECT ticket_id, state, issued_at, valid_from, valid_until, product_id, traveller_id, "
                             f"bundle_id, request_id FROM tickets WHERE {where} "
                             "ORDER BY issued_at DESC, ticket_id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [TicketRow(r["ticket_id"], r["state"], parse_time(r["issued_at"]), parse_time(r["valid_from"]),
                          parse_time(r["valid_until"]), r["product_id"], r["traveller_id"], r["bundle_id"],
                          r["request_id"]) for r in rows], total

    def timeline(self, ticket_id: str, offset: int, limit: int) -> tuple[list[TimelineItem], int]:
        """The ticket's changes of state and its devices' events, oldest first (at the same
        instant a change comes before an event: the issue before the first scan)."""
        total = self._count("SELECT (SELECT count(*) FROM ticket_log WHERE ticket_id = ?) + "
                            "(SELECT count(*) FROM events WHERE ticket_id = ?) AS n", [ticket_id, ticket_id])
        rows = self.db.query(
            "SELECT 'change' AS source, id, at AS happened, action AS what, actor AS who, "
            "CAST(NULL AS INTEGER) AS result, from_state, to_state, reason, CAST(NULL AS TEXT) AS body "
            "FROM ticket_log WHERE ticket_id = ? "
            "UNION ALL "
            "SELECT 'event' AS source, id, event_time AS happened, kind AS what, sub AS who, "
            "event_result AS result, CAST(NULL AS TEXT) AS from_state, CAST(NULL AS TEXT) AS to_state, "
            "CAST(NULL AS TEXT) AS reason, body FROM events WHERE ticket_id = ? "
            "ORDER BY happened, source, id LIMIT ? OFFSET ?", [ticket_id, ticket_id, limit, offset])
        return [_timeline_item(r) for r in rows], total

    # --- deny list --------------------------------------------------------------------------

    def deny_entries(self, kind: str | None, status: str, now: datetime, offset: int,
                     limit: int) -> tuple[list[DenyRow], int]:
        """Deny-list entries, newest first, with who added them and why when a ticket's change
        of state did. ``kind``: what the entry names (ticket, traveller, token; None: all);
        ``status``: in force (``expire`` still ahead), expired, or all."""
        where: list[str] = []
        params: list[Any] = []
        if kind is not None:
            where.append(DENY_KINDS[kind])
        if status == "in-force":
            where.append("d.expire > ?")
            params.append(ts(now))
        elif status == "expired":
            where.append("d.expire <= ?")
            params.append(ts(now))
        sql_where = " AND ".join(where) or "1 = 1"
        total = self._count(f"SELECT count(*) AS n FROM deny_list d WHERE {sql_where}", params)
        rows = self.db.query(
            "SELECT d.id AS id, d.ticket_id AS ticket_id, d.traveller_id AS traveller_id, d.token_id AS token_id, "
            "d.expire AS expire, d.reason AS reason, d.created_at AS created_at, l.actor AS actor, l.reason AS note "
            f"FROM deny_list d LEFT JOIN ticket_log l ON l.deny_id = d.id WHERE {sql_where} "
            "ORDER BY d.id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        return [DenyRow(r["id"], r["ticket_id"], r["traveller_id"], r["token_id"], parse_time(r["expire"]),
                        r["reason"], parse_time(r["created_at"]), r["actor"], r["note"]) for r in rows], total

    # --- activity ---------------------------------------------------------------------------

    def validations_by_minute(self, since: datetime, until: datetime) -> list[tuple[str, int | None, int]]:
        """``(minute "YYYY-MM-DDTHH:MM" UTC, result code, count)`` of the validations whose
        device time falls in ``[since, until)``."""
        rows = self.db.query("SELECT substr(event_time, 1, 16) AS minute, event_result AS result, count(*) AS n "
                             "FROM events WHERE event_time >= ? AND event_time < ? AND kind = 'validation' "
                             "GROUP BY substr(event_time, 1, 16), event_result", (ts(since), ts(until)))
        return [(r["minute"], r["result"], int(r["n"])) for r in rows]

    def refusals(self, since: datetime, until: datetime) -> list[tuple[int | None, str, int]]:
        """``(result code, kind, count)`` of the events in ``[since, until)`` that were not a
        success, most frequent first."""
        rows = self.db.query("SELECT event_result AS result, kind, count(*) AS n FROM events "
                             "WHERE event_time >= ? AND event_time < ? AND (event_result IS NULL OR event_result <> 0) "
                             "GROUP BY event_result, kind ORDER BY count(*) DESC, event_result, kind",
                             (ts(since), ts(until)))
        return [(r["result"], r["kind"], int(r["n"])) for r in rows]


__all__ = ["DENY_KINDS", "DENY_STATUSES", "SEARCH_BY", "ConsoleQueries", "DenyRow", "Session", "TicketRow",
           "TimelineItem"]
