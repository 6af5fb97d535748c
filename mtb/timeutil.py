"""Times at the edges: ISO 8601 basic (as MTBs carry them) and extended (as people type them).

Everything inside the project is an aware UTC ``datetime``; only the edges format or parse.
"""
from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc


class TimeFormatError(ValueError):
    """A time string that is not ISO 8601, or lacks a zone where one is required."""


def parse_time(text: str) -> datetime:
    """Parse basic (``20260101T120000Z``, fractions allowed) or extended ISO 8601 into UTC.

    The zone is required everywhere, operators' command lines included: a bare time is refused,
    never guessed as UTC.
    """
    if not isinstance(text, str) or not 8 <= len(text) <= 40:
        raise TimeFormatError(f"not an ISO 8601 time: {text!r:.60}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise TimeFormatError(f"not an ISO 8601 time: {text!r:.60}") from exc
    if value.tzinfo is None:
        raise TimeFormatError(f"time without a zone: {text!r:.60}")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+14:00 falls before year 1 in UTC
        raise TimeFormatError(f"time out of range in UTC: {text!r:.60}") from exc


def format_basic(value: datetime) -> str:
    """ISO 8601 basic UTC with whole seconds, the form MTB headers and payloads use."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def format_extended(value: datetime) -> str:
    """ISO 8601 extended UTC with milliseconds, the form ticketEvents and the server use."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)
