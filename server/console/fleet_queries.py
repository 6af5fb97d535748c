"""What the console reads of the fleet: the devices' latest state reports (kept by the fleet
API, :meth:`server.store.core.Store.report_device`), their state history and the events they
posted. Portable SQL over the store's :class:`~server.store.database.Database`, called through
the store runner like :mod:`server.console.queries`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mtb.timeutil import parse_time

from ..store.core import ts
from ..store.database import Database, Row

DEVICE_SORTS = {"last-contact": "d.last_contact ASC", "device": "d.device ASC", "outbox": "d.outbox_depth DESC",
                "alarms": "d.alarm_count DESC"}  # the only ORDER BY the fleet page can ask for
DEVICE_SHOWS = ("all", "silent", "alarm")
_DEVICE_COLUMNS = ("d.device AS device, c.role AS role, d.last_contact AS last_contact, "
                   "d.software_version AS software_version, d.outbox_depth AS outbox_depth, "
                   "d.alarm_count AS alarm_count, d.state AS state")


@dataclass(frozen=True)
class DeviceRow:
    """A device's state report (``state``: the report as the device sent it, decoded)."""

    device: str
    role: str | None  # its credential's role; None for another participant's device
    last_contact: datetime  # when the server received the report
    software_version: str | None
    outbox_depth: int
    alarm_count: int
    state: dict[str, Any]

    @property
    def participant(self) -> str | None:
        """The other participant whose device this is (its credential key is ``<pid>:<sub>``)."""
        pid, _, sub = self.device.partition(":")
        return pid if sub and pid.isdigit() else None


@dataclass(frozen=True)
class DeviceEvent:
    event_id: int
    ticket_id: str
    kind: str
    at: datetime  # the device's time of the event
    result: int | None
    event: dict[str, Any]  # the stored ticketEvent


@dataclass(frozen=True)
class DenyFetching:
    """Where the devices stand on the deny list, by their state reports."""

    devices: int  # that reported their state
    reporting: int  # of them, those that say when they last fetched the deny list
    behind: int  # of those, the ones that have not fetched the newest entry
    most_missing: int  # entries the device furthest behind still has to fetch


def _state(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _device(row: Row) -> DeviceRow:
    return DeviceRow(row["device"], row["role"], parse_time(row["last_contact"]), row["software_version"],
                     int(row["outbox_depth"]), int(row["alarm_count"]), _state(row["state"]))


class FleetQueries:
    def __init__(self, db: Database):
        self.db = db

    def _count(self, sql: str, params: Any = ()) -> int:
        return int(self.db.query(sql, params)[0]["n"])

    def devices(self, show: str, sort: str, silent_since: datetime, offset: int,
                limit: int) -> tuple[list[DeviceRow], int]:
        """``show``: all, silent (no report since ``silent_since``) or alarm (an alarm raised,
        among the devices not silent: the fleet API's counts); ``sort`` one of
        :data:`DEVICE_SORTS`, ties by device."""
        where, params = {"all": ("1 = 1", []), "silent": ("d.last_contact < ?", [ts(silent_since)]),
                         "alarm": ("d.last_contact >= ? AND d.alarm_count > 0", [ts(silent_since)])}[show]
        total = self._count(f"SELECT count(*) AS n FROM devices d WHERE {where}", params)
        rows = self.db.query(f"SELECT {_DEVICE_COLUMNS} FROM devices d LEFT JOIN credentials c "
                             f"ON c.entity_id = d.device WHERE {where} ORDER BY {DEVICE_SORTS[sort]}, d.device "
                             "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_device(r) for r in rows], total

    def device(self, device: str) -> DeviceRow | None:
        rows = self.db.query(f"SELECT {_DEVICE_COLUMNS} FROM devices d LEFT JOIN credentials c "
                             "ON c.entity_id = d.device WHERE d.device = ?", (device,))
        return _device(rows[0]) if rows else None

    def device_events(self, device: str, offset: int, limit: int) -> tuple[list[DeviceEvent], int]:
        """The events the device posted, the latest received first."""
        total = self._count("SELECT count(*) AS n FROM events WHERE sub = ?", (device,))
        rows = self.db.query("SELECT id, ticket_id, kind, event_time, event_result, body FROM events WHERE sub = ? "
                             "ORDER BY id DESC LIMIT ? OFFSET ?", (device, limit, offset))
        return [DeviceEvent(r["id"], r["ticket_id"], r["kind"], parse_time(r["event_time"]), r["event_result"],
                            _state(r["body"])) for r in rows], total

    def device_history(self, device: str, offset: int, limit: int) -> tuple[list[DeviceRow], int]:
        """The device's state over time, newest first (thinned: see ``Store._keep_history``)."""
        total = self._count("SELECT count(*) AS n FROM device_history WHERE device = ?", (device,))
        rows = self.db.query("SELECT device, CAST(NULL AS TEXT) AS role, at AS last_contact, software_version, "
                             "outbox_depth, alarm_count, state FROM device_history WHERE device = ? "
                             "ORDER BY at DESC, id DESC LIMIT ? OFFSET ?", (device, limit, offset))
        return [_device(r) for r in rows], total

    def deny_fetching(self) -> DenyFetching:
        """How many devices have not fetched the newest deny-list entry, and how many entries
        the one furthest behind still has to fetch (``devices.deny_fetched_at``: the report's
        time less the deny list's age the device gave)."""
        [row] = self.db.query(
            "SELECT count(*) AS devices, count(deny_fetched_at) AS reporting, min(deny_fetched_at) AS oldest, "
            "coalesce(sum(CASE WHEN deny_fetched_at < (SELECT max(created_at) FROM deny_list) THEN 1 ELSE 0 END), 0) "
            "AS behind FROM devices")
        oldest = row["oldest"]
        missing = self._count("SELECT count(*) AS n FROM deny_list WHERE created_at > ?", (oldest,)) if oldest else 0
        return DenyFetching(int(row["devices"]), int(row["reporting"]), int(row["behind"]), missing)

    def fetched_before(self, instant: datetime) -> list[str]:
        """When each device that last fetched the deny list before ``instant`` did, oldest first,
        in the stored form (which sorts as time does). Devices that keep up fetched after the
        newest entries, so this is short on a page of new entries; an entry lacks on as many
        devices as fetched before it was added (``bisect_left(found, ts(created_at))``)."""
        return [r["deny_fetched_at"] for r in self.db.query(
            "SELECT deny_fetched_at FROM devices WHERE deny_fetched_at < ? ORDER BY deny_fetched_at", (ts(instant),))]


__all__ = ["DEVICE_SHOWS", "DEVICE_SORTS", "DenyFetching", "DeviceEvent", "DeviceRow", "FleetQueries"]
