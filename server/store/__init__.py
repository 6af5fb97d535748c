"""The server's storage: one set of queries (:mod:`.core`) over a :class:`Database` backend
(:mod:`.sqlite`, the embedded default), with numbered migrations per backend.

``open_store(target)`` takes a file path (SQLite) and gives a migrated :class:`Store`;
:class:`StoreRunner` runs store calls off the event loop.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .core import Store
from .database import Database, MigrationError
from .records import (EVENT_SORT_FIELDS, SORT_ORDERS, TICKET_SORT_FIELDS, BundleRecord, Credential, DenyEntry,
                      DuplicateCredential, DuplicateManifest, EventRecord, ManifestRecord, NewEvent, StateConflict,
                      StoreError, TicketQuery, TicketRecord, TokenRecord, WhitelistEntry)
from .runner import StoreRunner
from .sqlite import SqliteDatabase


def open_database(target: str | Path) -> Database:
    """A database for a path (SQLite)."""
    return SqliteDatabase(target)


def open_store(target: str | Path) -> Store:
    return Store(open_database(target), now=datetime.now(timezone.utc))


__all__ = ["EVENT_SORT_FIELDS", "SORT_ORDERS", "TICKET_SORT_FIELDS", "BundleRecord", "Credential", "Database",
           "DenyEntry", "DuplicateCredential", "DuplicateManifest", "EventRecord", "ManifestRecord", "MigrationError",
           "NewEvent", "SqliteDatabase", "StateConflict", "Store", "StoreError", "StoreRunner", "TicketQuery",
           "TicketRecord", "TokenRecord", "WhitelistEntry", "open_database", "open_store"]
