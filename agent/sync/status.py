"""Each sync channel's own status (a feed, or the uploader), kept in the cache for ``python -m
agent status``: its cursor or ETag, when it last succeeded, its last error, and how long ago.

A channel logs when its state changes (working -> failing, a different failure, failing ->
working again), never at every retry: a device offline for a day logs twice, not 3,000 times.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from mtb.timeutil import format_extended, parse_time

from ..cache import Cache
from .errors import Transient

log = logging.getLogger("agent.sync")

META_PREFIX = "sync."
_TIMES = ("last_attempt_at", "last_success_at", "last_error_at")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass
class SyncStatus:
    name: str
    etag: str | None = None
    cursor: int | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0  # in a row; 0 when the last attempt succeeded
    errors: int = 0  # all failed attempts since the cache was made
    changes: int = 0  # items brought in (feeds) or events acknowledged (uploader)

    # --- what happened --------------------------------------------------------------------------

    def succeeded(self, at: datetime, changes: int = 0) -> None:
        if self.failures:
            log.info("sync %s works again after %d failed attempt(s); last error: %s",
                     self.name, self.failures, self.last_error)
        self.last_attempt_at = self.last_success_at = at
        self.failures = 0
        self.changes += changes

    def failed(self, at: datetime, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"[:500]
        if self.failures == 0 or _kind(self.last_error) != type(error).__name__:
            level = logging.WARNING if isinstance(error, Transient) else logging.ERROR
            log.log(level, "sync %s failing: %s (retrying; logged again only when this changes)", self.name, text)
        self.last_attempt_at = self.last_error_at = at
        self.last_error = text
        self.failures += 1
        self.errors += 1

    # --- in the cache ---------------------------------------------------------------------------

    @classmethod
    def load(cls, cache: Cache, name: str) -> "SyncStatus":
        stored = cache.get_meta(META_PREFIX + name)
        status = cls(name)
        if stored:
            data = json.loads(stored)
            for f in fields(cls):
                value = data.get(_camel(f.name))
                if value is not None and f.name != "name":
                    setattr(status, f.name, parse_time(value) if f.name in _TIMES else value)
        return status

    def save(self, cache: Cache) -> None:
        data = {_camel(k): (format_extended(v) if isinstance(v, datetime) else v)
                for k, v in asdict(self).items() if k != "name" and v is not None}
        cache.set_meta(META_PREFIX + self.name, json.dumps(data, sort_keys=True))


def _kind(error_text: str | None) -> str | None:
    return error_text.split(":", 1)[0] if error_text else None


def statuses_json(cache: Cache, now: datetime) -> dict[str, dict[str, Any]]:
    """Every channel's stored status with the age of each time, for ``agent status``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in cache.meta_items(META_PREFIX):
        data = json.loads(value)
        for name in _TIMES:
            at = data.get(_camel(name))
            if at:
                data[_camel(name).replace("At", "AgeSeconds")] = round((now - parse_time(at)).total_seconds())
        out[key[len(META_PREFIX):]] = data
    return out
