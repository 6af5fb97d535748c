"""The server's storage: one set of queries (:mod:`.core`) over a :class:`Database` backend
(:mod:`.sqlite`, the embedded default; :mod:`.postgres` for a fleet), with numbered migrations
per backend.

``open_store(target)`` takes a file path (SQLite) or a ``postgresql://`` URL and gives a
migrated :class:`Store`; :class:`StoreRunner` runs store calls off the event loop.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .core import Store
from .database import Database, MigrationError
from .records import (DEVICE_SORT_FIELDS, EVENT_SORT_FIELDS, SORT_ORDERS, TICKET_SORT_FIELDS, BundleRecord, Credential,
                      DatabaseUnavailable, DenyEntry, DeviceReport, DuplicateCredential, DuplicateManifest, EventRecord,
                      LimitState, ManifestRecord, NewEvent, StateConflict, StoreError, TicketQuery, TicketRecord,
                      TokenRecord, WhitelistEntry)
from .runner import StoreRunner
from .sqlite import SqliteDatabase


def is_database_url(target: object) -> bool:
    """A PostgreSQL URL (``postgresql://`` or ``postgres://``), as opposed to a SQLite file path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def open_database(target: str | Path, *, pool_size: int = 8) -> Database:
    """A database for a SQLite file path or a PostgreSQL URL (psycopg is imported only then:
    it is the ``postgresql`` extra)."""
    if is_database_url(target):
        from .postgres import PostgresDatabase
        return PostgresDatabase(str(target), pool_size=pool_size)
    return SqliteDatabase(target)


def open_store(target: str | Path, *, pool_size: int = 8) -> Store:
    return Store(open_database(target, pool_size=pool_size), now=datetime.now(timezone.utc))


__all__ = ["DEVICE_SORT_FIELDS", "DeviceReport", "EVENT_SORT_FIELDS", "SORT_ORDERS", "TICKET_SORT_FIELDS", "BundleRecord",
           "Credential", "Database", "DatabaseUnavailable", "DenyEntry", "DuplicateCredential", "DuplicateManifest",
           "EventRecord", "LimitState", "ManifestRecord", "MigrationError", "NewEvent", "SqliteDatabase",
           "StateConflict", "Store", "StoreError", "StoreRunner", "TicketQuery", "TicketRecord", "TokenRecord",
           "WhitelistEntry", "is_database_url", "open_database", "open_store"]
