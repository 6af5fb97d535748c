"""Files an operator keeps in the data directory and edits while the server runs (the product
catalogue, the TICKLE macro sets): read when first asked for, re-read when their modification
time changes, and checked on every read; a file that no longer parses keeps the last good
version (and says why in the log), so a typo never takes a feed down.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("server.datafile")
MAX_FILE_BYTES = 16 * 1024 * 1024


class DataFileError(ValueError):
    """A data file that cannot be used (its path and the first problem in the message)."""


def read_json_file(path: Path) -> Any:
    raw = path.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise DataFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataFileError(f"{path} is not JSON: {exc}") from None


class WatchedFile(Generic[T]):
    """``get()`` gives the parsed file (None when there is none); ``parse`` turns its JSON into
    a value or raises ValueError."""

    def __init__(self, path: Path, parse: Callable[[Any], T]):
        self.path = path
        self.parse = parse
        self._value: T | None = None
        self._mtime: int | None = None
        self._lock = threading.Lock()

    def get(self) -> T | None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            if self._mtime is not None:
                self._forget()
            return None
        except OSError:
            return self._value
        if mtime != self._mtime:
            with self._lock:
                if mtime != self._mtime:
                    self._reload(mtime)
        return self._value

    def _forget(self) -> None:
        with self._lock:
            self._value, self._mtime = None, None
        log.warning("%s was removed", self.path)

    def _reload(self, mtime: int) -> None:
        try:
            self._value = self.parse(read_json_file(self.path))
        except (OSError, ValueError) as exc:
            log.error("%s not loaded (%s); %s", self.path, str(exc)[:500],
                      "keeping the last good version" if self._value is not None else "serving none")
        self._mtime = mtime  # a broken file is not re-read on every call, only when it changes again
