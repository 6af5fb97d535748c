"""The device's SQLite cache: keys, KDKs, deny list, stops and zones, usage history, outbox.

One file per device, WAL mode. sqlite-utils makes and migrates the schema; the hot paths
(a scan's lookups and its one recording transaction) use plain sqlite3. Every write is
committed before the method returns; with full durability :meth:`Cache.make_durable` then
fsyncs the write-ahead log, and the engine calls it before any decision is shown.

The object is not thread-safe: the engine drives it from one worker thread.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from mtb.checks import DenyKind, Use
from mtb.keys import KeyMaterialError, KeyStore, jwk_public_key
from mtb.ticket_event import REQUIRED, event_problems
from mtb.timeutil import format_extended, parse_time, utcnow
from .cache_file import (CHECK_COMMAND, CacheError, ProcessLock, create_private, explain, inspect_file, is_damage,
                         make_private, move_aside, quick_check, reindex, salvage)
from .clock import ClockFloor
from .stops import StopArea

log = logging.getLogger(__name__)

WAL_CHECKPOINT_PAGES = 10_000
Durability = Literal["full", "normal"]

# sqlite3 adapts every parameter that is not an int, float, str or bytearray: for None it finds no
# adapter and raises (and clears) an AttributeError to learn so, once for each None bound, and a
# scan's usage row binds three. None adapted to itself binds as NULL just the same.
sqlite3.register_adapter(type(None), lambda value: value)


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    local_event_id: str
    event_type: str
    body_json: str  # the ticketEvent as stored: uploads send it as it is, without re-encoding
    attempts: int
    parked: bool
    last_error: str | None

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.body_json)


@dataclass(slots=True)
class ScanFacts:
    """What the cache knows of one ticket at a scan (:meth:`Cache.scan_facts`): its last accepted
    use anywhere and its last validation on this device, the deny entry that hits it, and other
    devices' latest use of it (the uses feed), anywhere and at the device's stop area."""

    last: Use | None = None
    here: Use | None = None
    denied: tuple[DenyKind, str] | None = None
    fleet_last: Use | None = None
    fleet_here: Use | None = None


def _create_v1(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["issuer_keys"].create({"pid": str, "kid": str, "jwk": str, "kind": str}, pk=("pid", "kid", "kind"))
    db["kdks"].create({"kid": str, "key": bytes, "added_at": str}, pk="kid")
    db["deny_list"].create({"kind": str, "value": str, "expire": str, "expire_epoch": float,
                            "server_id": int}, pk=("kind", "value"))
    db["stop_areas"].create({"stop_area_id": str, "name": str, "lat": float, "long": float, "zone_id": str},
                            pk="stop_area_id")
    db["usage"].create({"id": int, "ticket_id": str, "time": str, "epoch": float, "event_type": str,
                        "result": int, "device_id": str, "stop_area": str, "zone": str, "lat": float,
                        "long": float, "boot_id": str, "monotonic": float}, pk="id")
    db["usage"].create_index(["ticket_id", "epoch"])
    db["outbox"].create({"seq": int, "local_event_id": str, "event_type": str, "body": str,
                         "created_at": str, "attempts": int, "parked": int, "last_error": str},
                        pk="seq", defaults={"attempts": 0, "parked": 0}, not_null=["local_event_id", "body"])
    db["outbox"].create_index(["local_event_id"], unique=True)
    db["outbox"].create_index(["parked", "seq"])


def _lean_outbox_v2(db: sqlite_utils.Database) -> None:
    """Every index is a page written at each scan's commit: the outbox is read in seq order and
    deleted by seq, so its two secondary indexes only cost time on the hot path."""
    db.execute("DROP INDEX IF EXISTS idx_outbox_local_event_id")
    db.execute("DROP INDEX IF EXISTS idx_outbox_parked_seq")


def _accepted_uses_index_v3(db: sqlite_utils.Database) -> None:
    """Passback and fraud ask for a ticket's *accepted* uses: with the result in the index a
    ticket scanned (and refused) thousands of times is found in one seek, not a scan."""
    db.execute("DROP INDEX IF EXISTS idx_usage_ticket_id_epoch")
    db["usage"].create_index(["ticket_id", "result", "epoch"])


def _deny_list_without_rowid_v4(db: sqlite_utils.Database) -> None:
    """The deny list is only ever looked up by its key (kind, value): as a WITHOUT ROWID table
    the key is the table, and the automatic index beside it (32 MB of a 96 MB cache holding
    1,000,000 entries) is gone. Rebuilt by name and columns, never by a generated index name."""
    db.execute("CREATE TABLE deny_list_v4 (kind TEXT NOT NULL, value TEXT NOT NULL, expire TEXT, "
               "expire_epoch FLOAT, server_id INTEGER, PRIMARY KEY (kind, value)) WITHOUT ROWID")
    db.execute("INSERT INTO deny_list_v4 (kind, value, expire, expire_epoch, server_id) "
               "SELECT kind, value, expire, expire_epoch, server_id FROM deny_list "
               "WHERE kind IS NOT NULL AND value IS NOT NULL")
    db.execute("DROP TABLE deny_list")
    db.execute("ALTER TABLE deny_list_v4 RENAME TO deny_list")


def _fleet_uses_v5(db: sqlite_utils.Database) -> None:
    """Other devices' accepted validations, from the server's uses feed: what passback and fraud
    know of a ticket beyond this device. By ticket (the checks), and by time (the pruning)."""
    db.execute("CREATE TABLE fleet_uses (use_id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL, time TEXT NOT NULL, "
               "epoch FLOAT NOT NULL, device TEXT, stop_area TEXT, zone TEXT, lat FLOAT, long FLOAT)")
    db.execute("CREATE INDEX fleet_uses_by_ticket ON fleet_uses (ticket_id, epoch)")
    db.execute("CREATE INDEX fleet_uses_by_time ON fleet_uses (epoch)")


def _tickle_macros_v6(db: sqlite_utils.Database) -> None:
    """The operator's TICKLE macro sets by serial, each kept as the server sent it (JSON): the
    conditions an MTB's ``c_tc`` names are not evaluated yet, only kept for when they are."""
    db.execute("CREATE TABLE tickle_macro_sets (serial INTEGER PRIMARY KEY, pid INTEGER NOT NULL, "
               "body TEXT NOT NULL)")


# Append-only: migration N takes a cache at schema N-1 to N. Never edit a released one.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_create_v1, _lean_outbox_v2, _accepted_uses_index_v3,
                                                              _deny_list_without_rowid_v4, _fleet_uses_v5,
                                                              _tickle_macros_v6]


def _epoch(value: datetime) -> float:
    return value.timestamp()


class Cache:
    """One device's cache. Opened for writing (the default) it is this process's alone, and checked
    (see :mod:`agent.cache_file`); ``read_only`` opens share it with a running agent (``status``,
    ``outbox list``) and never create, lock or change the file."""

    def __init__(self, path: str | Path, *, durability: Durability = "full", read_only: bool = False,
                 repair: bool = False, thorough: bool = False, max_skew_s: float = 30.0,
                 floor_tolerance_s: float = 60.0) -> None:
        self.path = Path(path)
        self.max_skew_s = max_skew_s
        self.clock = ClockFloor(floor_tolerance_s)
        self.repairs: list[str] = []  # what opening the file had to do, for `cache check`
        self.durability = durability
        self._keystore: KeyStore | None = None
        self._lock: ProcessLock | None = None
        self._wal_fd: int | None = None
        self._durable_changes = -1  # conn.total_changes when the log was last made durable
        if read_only:
            self.conn = self._open_read_only()
        else:
            damage = inspect_file(self.path)  # before the lock file: a wrong path leaves nothing behind
            self._lock = ProcessLock(self.path)
            try:
                self.conn = self._open_checked(repair, damage, thorough)
            except BaseException:
                self._lock.release()
                raise
        self._use(self.conn)
        self._load_clock()
        if not read_only:
            self.make_durable()

    def close(self) -> None:
        self.conn.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def make_durable(self) -> None:
        """Full durability: fsync the write-ahead log once for everything committed since the
        last call (any write path), so a power cut cannot take it. No-op with normal durability."""
        changes = self.conn.total_changes
        if self.durability != "full" or changes == self._durable_changes:
            return
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDWR)
        # fdatasync where there is one (Linux): the log's data, not its timestamps
        (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self._wal_fd)
        self._durable_changes = changes

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- opening -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
        # Commits reach the write-ahead log, which survives a killed process. A power cut needs
        # the log on the disk: make_durable does that (full durability), once for every batch.
        conn.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint (two fsyncs, the log copied into the file) every ~3,000 scans rather than
        # every ~300: a 40 MB log, and each page that many scans touched is copied once.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        return conn

    def _open_checked(self, repair: bool, damage: str | None,
                      thorough: bool) -> sqlite3.Connection:
        """Schema version, quick_check (``thorough``: integrity_check), migrations, a test write;
        with ``repair`` (the agent at start, ``cache check``) a damaged file gets REINDEX or is
        moved aside, else it is an error."""
        alarms: list[str] = []
        conn: sqlite3.Connection | None = None
        try:
            if damage is None:
                create_private(self.path)
                conn = self._connect()
                damage = self._damage(conn, thorough)
            if damage is not None and not repair:
                raise CacheError(f"the cache is damaged ({damage}): {self.path}; run `{CHECK_COMMAND}`")
            if damage is not None and conn is not None and reindex(conn, thorough=thorough):
                alarms.append(f"cache {self.path} was damaged ({damage}); repaired by REINDEX")
                damage = None
            if damage is not None:
                if conn is not None:
                    conn.close()
                aside = move_aside(self.path)
                create_private(self.path)
                conn = self._connect()
                self._use(conn)
                self._migrate()
                alarms.append(self._take_over(aside, damage))
            assert conn is not None
            self._use(conn)
            self._migrate()
            self._test_write()
        except (sqlite3.Error, CacheError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, CacheError):
                raise
            raise explain(exc, self.path) from exc
        make_private(self.path)
        for text in alarms:
            self.repairs.append(text)
            self._alarm("cache", text)
        return conn

    def _test_write(self) -> None:
        """A cache that cannot record must say so before READY, not at the first scan. A read-only
        file or a full disk fails at the write itself, so this one commit skips the fsync."""
        self.conn.execute("PRAGMA synchronous=OFF")
        with self.transaction():
            self._set_meta("write_checked_at", format_extended(utcnow()))
        self.conn.execute("PRAGMA synchronous=NORMAL")

    def _use(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)

    def _damage(self, conn: sqlite3.Connection, thorough: bool) -> str | None:
        """Why the file is damaged, or None; refuses a schema newer than this agent knows."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                return str(exc)
            raise
        if version > len(MIGRATIONS):
            raise CacheError(f"cache {self.path} has schema version {version}, newer than this agent knows "
                             f"({len(MIGRATIONS)}): install the newer agent, or move the file aside")
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise CacheError(f"{self.path} is an SQLite database but not an agent cache: check the path "
                             "(--db, or db in the config)")
        return quick_check(conn, thorough=thorough)

    def _take_over(self, aside: Path, damage: str) -> str:
        """Copy what reads of a moved-aside file into this (new) one; the alarm text."""
        found = salvage(aside)
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO outbox(local_event_id, event_type, body, created_at, attempts, parked, "
                "last_error) VALUES (?,?,?,?,?,?,?)", [row[1:] for row in found.outbox])
            self.conn.executemany(_INSERT_USAGE, [row[1:] for row in found.usage])
        for row in found.usage:
            self.clock.note_event(parse_time(row[2]))
        log.error("cache %s moved aside to %s", self.path, aside)
        return (f"cache {self.path} was damaged ({damage}); moved aside to {aside.name} (kept), "
                f"{len(found.outbox)} queued event(s) re-queued, {found.unreadable} unreadable, "
                f"{len(found.usage)} usage row(s) kept; keys and lists come again from the server at the next sync")

    def _open_read_only(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise CacheError(f"no cache at {self.path}: check the path (--db, or db in the agent's config); "
                             "an agent creates its cache at its first start")
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from exc
        if not 1 <= version <= len(MIGRATIONS):
            conn.close()
            raise CacheError(f"{self.path} is not a cache this agent knows (schema version {version})")
        return conn

    def _load_clock(self) -> None:
        """The clock floor as the last run left it: the server's time and the newest events since."""
        server = self.get_meta("server_time")
        if server:
            self.clock.note_server(parse_time(server))
        kept = self.get_meta("newest_event_at")
        if kept:
            self.clock.note_event(parse_time(kept))
        after = int(self.get_meta("server_time_usage_id") or 0)
        row = self.conn.execute("SELECT max(epoch) FROM (SELECT epoch FROM usage WHERE id > ? "
                                "ORDER BY id DESC LIMIT 1000)", (after,)).fetchone()
        if row[0] is not None:
            self.clock.note_event(datetime.fromtimestamp(row[0], timezone.utc))

    # --- schema --------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                migration(self.db)
                self.conn.execute(f"PRAGMA user_version={number}")

    def transaction(self) -> "_Transaction":
        """BEGIN IMMEDIATE ... COMMIT; inside another one it joins it (the outer one commits)."""
        return _Transaction(self.conn)

    # --- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def meta_items(self, prefix: str) -> list[tuple[str, str]]:
        """Every (key, value) whose key starts with ``prefix``, by key."""
        rows = self.conn.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
                                 (len(prefix), prefix))
        return [(key, value) for key, value in rows]

    # --- alarms ----------------------------------------------------------------------------------

    def alarms(self) -> dict[str, dict[str, str]]:
        """Raised alarms by kind: ``{"text", "since", "until"?}`` (``until``: when it ends, or
        when the device tries again). What ``python -m agent status`` shows."""
        stored = json.loads(self.get_meta("alarms") or "{}")
        return {kind: value if isinstance(value, dict) else {"text": str(value)} for kind, value in stored.items()}

    def raise_alarm(self, kind: str, text: str, until: datetime | None = None) -> bool:
        """Raise or update one alarm (the others stay as they are); True when it is new."""
        with self.transaction():
            alarms = self.alarms()
            new = kind not in alarms
            alarm = {"text": text, "since": alarms.get(kind, {}).get("since") or format_extended(utcnow())}
            if until is not None:
                alarm["until"] = format_extended(until)
            alarms[kind] = alarm
            self._set_meta("alarms", json.dumps(alarms, sort_keys=True))
        return new

    def clear_alarm(self, kind: str) -> bool:
        """True when the alarm was raised."""
        with self.transaction():
            alarms = self.alarms()
            if alarms.pop(kind, None) is None:
                return False
            self._set_meta("alarms", json.dumps(alarms, sort_keys=True))
        return True

    def _alarm(self, kind: str, text: str) -> None:
        """An alarm the cache raises itself (repairs, clock skew): logged at ERROR once, when new."""
        if self.raise_alarm(kind, text):
            log.error("ALARM %s: %s", kind, text)

    # --- the server's clock ----------------------------------------------------------------------

    def observe_server_time(self, server_time: datetime, local_time: datetime) -> None:
        """The server's ``Date`` at a successful contact, and the device clock when it arrived.

        The server's time becomes the clock floor (kept across restarts) and the bound for pruning,
        which a wrong device clock cannot move; a skew beyond ``max_skew_s`` (config ``[clock]
        max_skew_seconds``) is the ``clock-skew`` alarm."""
        skew = (local_time - server_time).total_seconds()
        self.clock.note_server(server_time)
        with self.transaction():
            self._set_meta("server_time", format_extended(server_time))
            self._set_meta("server_time_usage_id",
                           str(self.conn.execute("SELECT coalesce(max(id), 0) FROM usage").fetchone()[0]))
            self._set_meta("clock_skew_s", f"{skew:.1f}")
            self.conn.execute("DELETE FROM meta WHERE key='newest_event_at'")
        if abs(skew) > self.max_skew_s:
            self._alarm("clock-skew", f"device clock is {skew:+.0f} s off the server's (max {self.max_skew_s:.0f} s)")
        elif self.clear_alarm("clock-skew"):
            log.info("alarm clock-skew cleared: the device clock is %+.0f s off the server's", skew)

    def server_time(self) -> datetime | None:
        """The server's time at the last successful contact."""
        return self.clock.server_time

    # --- keys ------------------------------------------------------------------------------------

    def import_metadata(self, participants: Any) -> KeyStore:
        """Replace the issuer and auth-token keys with those of a participant metadata document.

        The document is checked whole first (a bad one changes nothing); single unusable keys are
        skipped and reported in the returned store's ``skipped``.
        """
        checked = KeyStore()
        checked.add_metadata(participants)
        if not checked.issuer_keys:  # an empty list would turn every ticket into a 5, silently
            raise KeyMaterialError("participant metadata lists no usable issuer key; keeping the old keys")
        rows = [(pid, kid, json.dumps(jwk), "mtb" if group == "mtbPublicKeys" else "authtoken")
                for pid, kid, jwk, group in checked.accepted]
        with self.transaction():
            self.conn.execute("DELETE FROM issuer_keys")
            self.conn.executemany("INSERT OR REPLACE INTO issuer_keys(pid, kid, jwk, kind) VALUES (?,?,?,?)", rows)
            now = format_extended(utcnow())
            self._set_meta("metadata_updated_at", now)
            self._set_meta("metadata_checked_at", now)
        self._keystore = None
        return checked

    def add_kdk(self, kid: str, key: bytes) -> None:
        with self.transaction():
            self.conn.execute("INSERT OR REPLACE INTO kdks(kid, key, added_at) VALUES (?,?,?)",
                              (kid, key, format_extended(utcnow())))
        self._keystore = None

    def replace_kdks(self, kdks: Iterable[tuple[str, bytes]]) -> None:
        now = format_extended(utcnow())
        with self.transaction():
            self.conn.execute("DELETE FROM kdks")
            self.conn.executemany("INSERT INTO kdks(kid, key, added_at) VALUES (?,?,?)",
                                  [(kid, key, now) for kid, key in kdks])
        self._keystore = None

    def keystore(self) -> KeyStore:
        """The keys as the verifier wants them; rebuilt only after they change."""
        if self._keystore is None:
            store = KeyStore()
            for pid, kid, jwk, kind in self.conn.execute("SELECT pid, kid, jwk, kind FROM issuer_keys"):
                target = store.issuer_keys if kind == "mtb" else store.authtoken_keys
                target[(pid, kid)] = jwk_public_key(json.loads(jwk))
            store.kdks.update(self.conn.execute("SELECT kid, key FROM kdks"))
            self._keystore = store
        return self._keystore

    # --- deny-list -------------------------------------------------------------------------------

    def deny(self, kind: DenyKind, value: str, expire: datetime, server_id: int | None = None) -> None:
        self.apply_deny_entries([(kind, value, expire, server_id)])

    def apply_deny_entries(self, entries: Sequence[tuple[DenyKind, str, datetime, int | None]],
                           high_water: int | None = None) -> None:
        """The newest entry for a (kind, value) wins: that is how the server lifts one.
        ``high_water``: the last server entry id this page covered, malformed entries included."""
        rows = [(kind, value, format_extended(expire), _epoch(expire), server_id)
                for kind, value, expire, server_id in entries]
        high = max((r[4] for r in rows if r[4] is not None), default=high_water)
        if high_water is not None and high is not None:
            high = max(high, high_water)
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO deny_list(kind, value, expire, expire_epoch, server_id) VALUES (?,?,?,?,?)",
                rows)
            if high is not None and high > self.deny_high_water():
                self._set_meta("deny_high_water", str(high))

    def deny_high_water(self) -> int:
        """The highest server ``blacklistEntryId`` applied: the next delta starts after it."""
        return int(self.get_meta("deny_high_water") or 0)

    def denied(self, candidates: Sequence[tuple[DenyKind, str]], at: datetime) -> tuple[DenyKind, str] | None:
        """The first of ``candidates`` (kind, value) with a deny entry still in force at ``at``."""
        if not candidates:
            return None
        epoch = _epoch(at)
        rows = self.conn.execute(_deny_sql(len(candidates)), [x for kind, value in candidates
                                                             for x in (kind, value, epoch)]).fetchall()
        return _first_denied(candidates, rows)

    def scan_facts(self, ticket_id: str, device_id: str, candidates: Sequence[tuple[DenyKind, str]],
                   at: datetime, stop_area: str | None = None) -> ScanFacts:
        """What a scan of one ticket asks the cache, in one statement: its last accepted use
        anywhere and on ``device_id`` (as :meth:`last_uses`), the first of ``candidates`` denied
        at ``at`` (as :meth:`denied`), and its latest use on another device, anywhere and at
        ``stop_area`` when one is given (as :meth:`fleet_last_uses`)."""
        facts = ScanFacts()
        denied: list[tuple[Any, Any]] = []
        params: list[Any] = [ticket_id, ticket_id, device_id, ticket_id]
        if stop_area is not None:
            params += (ticket_id, stop_area)
        epoch = _epoch(at)
        for kind, value in candidates:
            params += (kind, value, epoch)
        for which, *row in self.conn.execute(_scan_facts_sql(len(candidates), stop_area is not None), params):
            if which == 2:
                denied.append((row[0], row[1]))
            else:
                setattr(facts, _SCAN_FACT_NAMES[which], _use(row))
        if denied:
            facts.denied = _first_denied(candidates, denied)
        return facts

    # --- stops and zones -------------------------------------------------------------------------

    def replace_stop_areas(self, areas: Iterable[StopArea]) -> int:
        rows = [(a.stop_area_id, a.name, a.lat, a.long, a.zone_id) for a in areas]
        with self.transaction():
            self.conn.execute("DELETE FROM stop_areas")
            self.conn.executemany("INSERT INTO stop_areas(stop_area_id, name, lat, long, zone_id) VALUES (?,?,?,?,?)",
                                  rows)
        return len(rows)

    def stop_areas(self) -> list[StopArea]:
        return [StopArea(*row) for row in
                self.conn.execute("SELECT stop_area_id, name, lat, long, zone_id FROM stop_areas")]

    # --- usage history ---------------------------------------------------------------------------

    def last_uses(self, ticket_id: str, device_id: str) -> tuple[Use | None, Use | None]:
        """The ticket's last accepted use anywhere (fraud looks at it) and its last accepted
        validation on ``device_id`` (passback): one statement, at most two rows."""
        last = here = None
        for which, *row in self.conn.execute(_LAST_USES, (ticket_id, ticket_id, device_id)):
            if which == 0:
                last = _use(row)
            else:
                here = _use(row)
        return last, here

    def recent_uses(self, ticket_id: str, limit: int = 5) -> list[Use]:
        rows = self.conn.execute(f"SELECT {_USE_COLUMNS} FROM usage WHERE ticket_id=? ORDER BY epoch DESC LIMIT ?",
                                 (ticket_id, limit))
        return [_use(row) for row in rows]

    def prune(self, now: datetime, *, history_days: float, deny_grace_days: float = 1.0) -> tuple[int, int]:
        """Forget usage older than the history horizon and deny entries expired long ago (an expired
        entry blocks nothing; the newest-wins rule keeps working without it).

        Both bounds count back from the server's time at the last contact (or, on a device that
        never reached a server, the newest recorded event), never from a later ``now``: a clock
        40 days fast would otherwise delete deny entries still in force, which the deny-list feed
        never sends again (its high-water mark has passed them). Without a server time no deny
        entry is pruned."""
        server = self.clock.server_time
        reference = min(now, server or self.clock.newest_event or now)
        with self.transaction():
            usage = self.conn.execute("DELETE FROM usage WHERE epoch < ?",
                                      (_epoch(reference - timedelta(days=history_days)),)).rowcount
            deny = 0 if server is None else self.conn.execute(
                "DELETE FROM deny_list WHERE expire_epoch < ?",
                (_epoch(min(now, server) - timedelta(days=deny_grace_days)),)).rowcount
        return usage, deny

    # --- other devices' uses (the uses feed) -----------------------------------------------------

    def apply_fleet_uses(self, uses: Sequence[tuple[int, Use]], high_water: int) -> None:
        """Other devices' accepted uses by their server ``useId``; ``high_water``: the last id the
        page covered (malformed entries and this device's own included)."""
        rows = [(use_id, u.ticket_id, format_extended(u.time), _epoch(u.time), u.device_id, u.stop_area, u.zone,
                 u.lat, u.long) for use_id, u in uses]
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO fleet_uses(use_id, ticket_id, time, epoch, device, "
                                  "stop_area, zone, lat, long) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            if high_water > self.uses_high_water():
                self._set_meta("uses_high_water", str(high_water))

    def uses_high_water(self) -> int:
        """The highest server ``useId`` applied: the uses feed goes on after it."""
        return int(self.get_meta("uses_high_water") or 0)

    def fleet_last_uses(self, ticket_id: str, stop_area: str | None) -> tuple[Use | None, Use | None]:
        """The ticket's latest accepted use on another device, anywhere and at ``stop_area``."""
        sql, params = (_FLEET_LAST, [ticket_id]) if stop_area is None else \
            (f"{_FLEET_LAST} UNION ALL {_FLEET_LAST_AT}", [ticket_id, ticket_id, stop_area])
        found = {which: _use(row) for which, *row in self.conn.execute(sql, params)}
        return found.get(3), found.get(4)

    def prune_fleet_uses(self, horizon_s: float, now: datetime) -> int:
        """Forget other devices' uses older than ``horizon_s``, counted back from the server's time
        at the last contact (never from a later device clock: one running hours fast would
        forget uses still inside the passback window). Without a server time, nothing."""
        server = self.server_time()
        if server is None:
            return 0
        before = min(server, now) - timedelta(seconds=horizon_s)
        with self.transaction():
            return self.conn.execute("DELETE FROM fleet_uses WHERE epoch < ?", (_epoch(before),)).rowcount

    # --- TICKLE macro sets ------------------------------------------------------------------------

    def replace_tickle_sets(self, sets: dict[int, tuple[int, str]]) -> int:
        """The macro sets the server publishes now, ``{serial: (pid, body JSON)}``, in place of
        those held; returns how many were added, changed or dropped (0: nothing written)."""
        held = self.tickle_sets()
        changed = {serial for serial in held.keys() | sets.keys() if held.get(serial) != sets.get(serial)}
        if changed:
            with self.transaction():
                self.conn.execute("DELETE FROM tickle_macro_sets")
                self.conn.executemany("INSERT INTO tickle_macro_sets(serial, pid, body) VALUES (?,?,?)",
                                      [(serial, pid, body) for serial, (pid, body) in sets.items()])
        return len(changed)

    def tickle_sets(self) -> dict[int, tuple[int, str]]:
        return {serial: (pid, body) for serial, pid, body in
                self.conn.execute("SELECT serial, pid, body FROM tickle_macro_sets ORDER BY serial")}

    # --- recording and the outbox ----------------------------------------------------------------

    def record(self, events: Sequence[dict[str, Any]], uses: Sequence[Use], *, conforming: bool = False) -> None:
        """The outbox events and their usage rows, in the caller's transaction (the engine's:
        a scan's reads and its writes are one) or in one of their own.

        Each event is checked against the server's ticketEvent shape first: an optional member it
        would refuse is dropped (and the reason says so) rather than park the event for ever.
        ``conforming``: the caller vouches for the shape (the engine does, see
        :class:`agent.engine.PlaceCheck`), and the events are stored as they are."""
        if not self.conn.in_transaction:
            with self.transaction():
                return self.record(events, uses, conforming=conforming)
        execute = self.conn.execute
        try:
            for event in events:
                execute(_INSERT_OUTBOX, (event["localEventId"], event["eventType"],
                                         _JSON.encode(event) if conforming else conformed(event)))
            for u in uses:
                execute(_INSERT_USAGE, (u.ticket_id, format_extended(u.time), _epoch(u.time), u.event_type, u.result,
                                        u.device_id, u.stop_area, u.zone, u.lat, u.long, u.boot_id, u.monotonic))
            newest = self.clock.newest_event
            if uses and newest is not None and self.clock.below(uses[0].time):  # keep the floor for a restart
                self._set_meta("newest_event_at", format_extended(newest))
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from exc
        for u in uses:
            self.clock.note_event(u.time)

    def outbox(self, *, limit: int = 1000, event_type: str | None = None, parked: bool = False) -> list[OutboxEvent]:
        sql = "SELECT seq, local_event_id, event_type, body, attempts, parked, last_error FROM outbox WHERE parked=?"
        params: list[Any] = [int(parked)]
        if event_type is not None:
            sql += " AND event_type=?"
            params.append(event_type)
        rows = self.conn.execute(sql + " ORDER BY seq LIMIT ?", [*params, limit])
        return [OutboxEvent(seq, lid, etype, body, attempts, bool(p), err)
                for seq, lid, etype, body, attempts, p, err in rows]

    def outbox_count(self, *, parked: bool | None = None) -> int:
        if parked is None:
            return self.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return self.conn.execute("SELECT count(*) FROM outbox WHERE parked=?", (int(parked),)).fetchone()[0]

    def acknowledge(self, seqs: Iterable[int], at: str | None = None) -> int:
        """Delete events the server acknowledged; the only way an event leaves the outbox.
        ``at`` notes when the server last took events (an operator's "is it online?")."""
        with self.transaction():
            cursor = self.conn.executemany("DELETE FROM outbox WHERE seq=?", [(seq,) for seq in seqs])
            if at is not None:
                self._set_meta("last_upload_at", at)
        return cursor.rowcount

    def oldest_queued_at(self) -> str | None:
        row = self.conn.execute("SELECT created_at FROM outbox WHERE parked=0 ORDER BY seq LIMIT 1").fetchone()
        return row[0] if row else None

    def note_failure(self, seqs: Iterable[int], error: str, *, park: bool) -> None:
        """Count a failed upload; ``park`` sets the events aside for a human (never dropped)."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE outbox SET attempts=attempts+1, last_error=?, parked=MAX(parked, ?) WHERE seq=?",
                [(error[:500], int(park), seq) for seq in seqs])

    def unpark(self) -> int:
        with self.transaction():
            return self.conn.execute("UPDATE outbox SET parked=0 WHERE parked=1").rowcount


def conformed(event: dict[str, Any]) -> str:
    """The event as JSON the server accepts: members it would refuse are dropped, and noted."""
    problems = event_problems(event)
    if problems:
        if REQUIRED & problems.keys():
            raise ValueError(f"event {event.get('localEventId')} cannot be made acceptable: {problems}")
        log.error("event %s: dropped what the server would refuse: %s", event.get("localEventId"), problems)
        for member, why in problems.items():
            event.pop(member, None)
            event["eventReason"] = f"{event.get('eventReason', '')} [dropped {why}]"[:1000]
    return _JSON.encode(event)


# one encoder: json.dumps with options builds one per call; NaN and infinities are no JSON
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
# created_at: when it was queued, by the system clock as format_extended writes it (SQLite's
# own formatting, in C: a Python one costs a scan more than the rest of the row)
_INSERT_OUTBOX = ("INSERT INTO outbox(local_event_id, event_type, body, created_at) "
                  "VALUES (?,?,?,strftime('%Y-%m-%dT%H:%M:%fZ','now'))")
_INSERT_USAGE = ("INSERT INTO usage(ticket_id, time, epoch, event_type, result, device_id, stop_area, zone, lat, long, "
                 "boot_id, monotonic) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
_USE_COLUMNS = "ticket_id, time, event_type, result, device_id, stop_area, zone, lat, long, boot_id, monotonic"
_LAST_USES = (f"SELECT 0, * FROM (SELECT {_USE_COLUMNS} FROM usage WHERE ticket_id=? AND result=0 "
              "ORDER BY epoch DESC LIMIT 1) UNION ALL "
              f"SELECT 1, * FROM (SELECT {_USE_COLUMNS} FROM usage WHERE ticket_id=? AND result=0 AND device_id=? "
              "AND event_type='validation' ORDER BY epoch DESC LIMIT 1)")


@functools.cache
def _deny_sql(count: int, columns: str = "kind, value") -> str:
    """A look-up of ``count`` (kind, value) pairs in force after an epoch: one primary-key seek
    each (an OR of the pairs costs half as much again: SQLite sorts its hits to drop duplicates).
    One text per count, so the statement cache keeps each prepared."""
    seek = f"SELECT {columns} FROM deny_list WHERE kind=? AND value=? AND expire_epoch > ?"
    return " UNION ALL ".join([seek] * count)


@functools.cache
def _scan_facts_sql(count: int, at_stop: bool) -> str:
    """:data:`_LAST_USES` (rows marked 0 and 1), the other devices' latest use anywhere (3) and,
    with ``at_stop``, at a stop area (4), each padded to a usage row's width, and the deny hits
    (2) padded likewise."""
    fleet = [_FLEET_LAST] + ([_FLEET_LAST_AT] if at_stop else [])
    padded = "2, kind, value" + ", NULL" * (_USE_COLUMNS.count(",") - 1)
    return " UNION ALL ".join([_LAST_USES, *fleet] + ([_deny_sql(count, padded)] if count else []))


def _first_denied(candidates: Sequence[tuple[DenyKind, str]],
                  rows: Iterable[tuple[Any, Any]]) -> tuple[DenyKind, str] | None:
    found = set(rows)
    return next((c for c in candidates if c in found), None)


# Other devices' uses as usage rows (each an accepted validation): one reader, _use, for both.
_FLEET_COLUMNS = "ticket_id, time, 'validation', 0, device, stop_area, zone, lat, long, NULL, NULL"
_FLEET_LAST = (f"SELECT 3, * FROM (SELECT {_FLEET_COLUMNS} FROM fleet_uses WHERE ticket_id=? "
               "ORDER BY epoch DESC LIMIT 1)")
_FLEET_LAST_AT = (f"SELECT 4, * FROM (SELECT {_FLEET_COLUMNS} FROM fleet_uses WHERE ticket_id=? AND stop_area=? "
                  "ORDER BY epoch DESC LIMIT 1)")
_SCAN_FACT_NAMES = {0: "last", 1: "here", 3: "fleet_last", 4: "fleet_here"}


def _use(row: Sequence[Any]) -> Use:
    return Use(row[0], parse_time(row[1]), row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10])


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. Inside an open transaction it
    joins it: the engine's reads (passback, fraud) and its recording are one write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.outer:
            return  # the outer transaction commits, or rolls back on the exception passing through it
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                if self.conn.in_transaction:  # a failed COMMIT can leave it open: never wedge the connection
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:  # SQLite may have rolled back already; keep the first error
            self.conn.execute("ROLLBACK")
