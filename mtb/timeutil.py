"""Times at the edges: ISO 8601 basic (as MTBs carry them) and extended (as people type them).

Everything inside the project is an aware UTC ``datetime``; only the edges format or parse.
"""
from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta, timezone

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


_WIRE_TIME = re.compile(
    r"(?P<Y>\d{4})(?P<s>-?)(?P<M>\d{2})(?P=s)(?P<D>\d{2})T(?P<h>\d{2})(?P<c>:?)(?P<m>\d{2})(?P=c)(?P<sec>\d{2})"
    r"(?:[.,](?P<frac>\d{1,9}))?(?P<zone>Z|[+-]\d{2}(?:(?P=c)\d{2})?)")
_WIRE_DATE = re.compile(r"(?P<Y>\d{4})(?P<s>-?)(?P<M>\d{2})(?P=s)(?P<D>\d{2})")
# The same forms as regular expressions, for documents (JSON Schema ``pattern``).
WIRE_TIME_PATTERN = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
                     r"([.,]\d{1,9})?(Z|[+-]([01]\d|2[0-3])(:[0-5]\d)?)$"
                     r"|^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3])[0-5]\d[0-5]\d"
                     r"([.,]\d{1,9})?(Z|[+-]([01]\d|2[0-3])([0-5]\d)?)$")
WIRE_DATE_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$|^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$"


def parse_wire_time(text: object) -> datetime:
    """A time as BoB messages carry it, strictly: ISO 8601 basic (``20170521T200000Z``,
    ``19730614T220000+0200``) or extended (``2017-05-21T20:00:00.123+02:00``), a zone required,
    one form throughout (no ``2017-05-21T20:00:00+0200``), seconds required, fractions up to
    nanoseconds (kept to the microsecond). Unix seconds, a space for the ``T``, a missing zone
    and out-of-range fields are :class:`TimeFormatError`. Returns UTC."""
    if not isinstance(text, str) or len(text) > 40:
        raise TimeFormatError("must be an ISO 8601 date-time string (basic or extended) with a zone")
    match = _WIRE_TIME.fullmatch(text)
    if not match or bool(match["s"]) != bool(match["c"]):  # one form throughout
        raise TimeFormatError(f"not an ISO 8601 date-time with a zone (basic or extended form): {text!r:.60}")
    zone = match["zone"]
    offset = timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 23 or minutes > 59:
            raise TimeFormatError(f"zone offset out of range: {text!r:.60}")
        offset = (1 if zone[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes)
    micro = int((match["frac"] or "0")[:6].ljust(6, "0"))
    try:
        value = datetime(int(match["Y"]), int(match["M"]), int(match["D"]), int(match["h"]), int(match["m"]),
                         int(match["sec"]), micro, tzinfo=timezone(offset))
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise TimeFormatError(f"date-time out of range: {text!r:.60}") from None


def parse_wire_date(text: object) -> date:
    """A calendar date, basic (``20170101``) or extended (``2017-01-01``)."""
    match = _WIRE_DATE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise TimeFormatError("must be an ISO 8601 date, 20170101 or 2017-01-01")
    try:
        return date(int(match["Y"]), int(match["M"]), int(match["D"]))
    except ValueError:
        raise TimeFormatError(f"date out of range: {text!r:.20}") from None


def format_basic(value: datetime) -> str:
    """ISO 8601 basic UTC with whole seconds, the form MTB headers and payloads use."""
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@functools.lru_cache(maxsize=8)
def format_extended(value: datetime) -> str:
    """ISO 8601 extended UTC with milliseconds, the form ticketEvents and the server use.

    Kept for the last few times formatted: a scan formats its time for its event and again for
    its usage row (equal datetimes are one instant, whose UTC text is one)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)
