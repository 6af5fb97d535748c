"""The device's own view of itself: what its state report tells the server (``POST
/device/state``) and what its metrics show. One reading of the cache serves both, so the fleet
view and a scrape of the device never disagree.

Whether the cache checks out is SQLite's ``quick_check`` over the whole file: seconds on a big
cache, so it runs at most every :data:`CACHE_CHECK_INTERVAL_S`, on a connection of its own in
another thread (the engine's thread, and so the scans, never wait for it).
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mtb.timeutil import parse_time

from ..cache import Cache
from .status import SyncStatus

log = logging.getLogger(__name__)
CACHE_CHECK_INTERVAL_S = 3600.0
MAX_SECONDS = 10 ** 9  # what the server takes as an age


def software_version() -> str:
    try:
        return "mtb-validator " + importlib.metadata.version("mtb-validator")
    except importlib.metadata.PackageNotFoundError:
        return "mtb-validator (not installed)"


@dataclass(frozen=True)
class CacheHealth:
    ok: bool
    detail: str


class CacheCheck:
    """SQLite's ``quick_check`` of the cache file, again when the last is older than the interval."""

    def __init__(self, path: Path, interval_s: float = CACHE_CHECK_INTERVAL_S) -> None:
        self.path = path
        self.interval_s = interval_s
        self.last: CacheHealth | None = None
        self._checked_at = -math.inf

    async def current(self) -> CacheHealth:
        if time.monotonic() - self._checked_at >= self.interval_s:
            self.last = await asyncio.to_thread(quick_check, self.path)
            self._checked_at = time.monotonic()
            if not self.last.ok:
                log.error("device cache %s fails its check: %s", self.path, self.last.detail)
        assert self.last is not None
        return self.last


def quick_check(path: Path) -> CacheHealth:
    """``PRAGMA quick_check`` on a read-only connection of its own."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        conn.close()
    except sqlite3.Error as exc:
        return CacheHealth(False, f"cannot check the cache: {exc}")
    if problems == ["ok"]:
        return CacheHealth(True, "quick_check ok")
    return CacheHealth(False, "quick_check: " + "; ".join(problems)[:900])


# The lists a device holds, by the name the state report gives them, and where their age comes from.
LISTS = ("participant-metadata", "kdks", "deny-list", "uses", "stops", "tickle-macros")


@dataclass(frozen=True)
class DeviceState:
    outbox_depth: int
    oldest_event_age_s: float | None
    parked: int
    list_ages_s: dict[str, float | None]
    alarms: dict[str, dict[str, str]]
    clock_skew_s: float | None
    sync_errors: dict[str, int] = field(default_factory=dict)  # failed attempts per sync channel, ever

    def report(self, version: str, health: CacheHealth) -> dict[str, Any]:
        """The ``POST /device/state`` body."""
        outbox: dict[str, Any] = {"depth": self.outbox_depth, "parked": self.parked}
        if self.oldest_event_age_s is not None:
            outbox["oldestEventAgeSeconds"] = _seconds(self.oldest_event_age_s)
        body: dict[str, Any] = {
            "softwareVersion": version[:100], "outbox": outbox,
            "listAgesSeconds": {name: None if age is None else _seconds(age) for name, age in self.list_ages_s.items()},
            "alarms": [{"kind": kind[:100], "message": alarm.get("text", "")[:1000],
                        **({"since": alarm["since"][:40]} if alarm.get("since") else {})}
                       for kind, alarm in sorted(self.alarms.items())][:50],
            "cache": {"ok": health.ok, "detail": health.detail},
        }
        if self.clock_skew_s is not None:
            body["clockSkewSeconds"] = max(-MAX_SECONDS, min(MAX_SECONDS, self.clock_skew_s))
        return body


def _seconds(value: float) -> float:
    return round(max(0.0, min(float(MAX_SECONDS), value)), 1)


def read_state(cache: Cache, now: datetime) -> DeviceState:
    """The device's state from its cache (on the engine's thread)."""
    statuses = {name: SyncStatus.load(cache, name) for name in (*LISTS, "upload", "state")}
    ages: dict[str, float | None] = {}
    for name in LISTS:
        # the trust list's age is when the server last confirmed it (a 304 counts); the others', their last sync
        at = cache.get_meta("metadata_checked_at") if name == "participant-metadata" else None
        when = parse_time(at) if at else statuses[name].last_success_at
        ages[name] = None if when is None else (now - when).total_seconds()
    oldest = cache.oldest_queued_at()
    skew = cache.get_meta("clock_skew_s")
    return DeviceState(
        outbox_depth=cache.outbox_count(parked=False),
        oldest_event_age_s=None if oldest is None else (now - parse_time(oldest)).total_seconds(),
        parked=cache.outbox_count(parked=True), list_ages_s=ages, alarms=cache.alarms(),
        clock_skew_s=None if skew is None else float(skew),
        sync_errors={name: status.errors for name, status in statuses.items()})
