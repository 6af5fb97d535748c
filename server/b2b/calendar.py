"""Calendar months of the job ticket, in the operator's time zone.

A job ticket covers one calendar month *as the operator's passengers live it*: a May ticket of
an operator in Europe/Berlin is valid from 1 May 00:00 local time (30 April 22:00 UTC) until
1 June 00:00 local time, exclusive. The zone is ``b2b.timezone`` in the server config (an IANA
name; ``UTC`` by default). Dates on the API (``startAt``, ``validFrom``, ``ticketMonth``...)
are dates in that zone; instants (MTB validity, ``createdAt``) are UTC.

Everything here is a pure function of its arguments; nothing reads the clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, day: date) -> "Month":
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, text: str) -> "Month":
        """``YYYY-MM``."""
        year, _, month = text.partition("-")
        if len(year) != 4 or len(month) != 2 or not (year + month).isdigit() or not 1 <= int(month) <= 12:
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        return cls(int(year), int(month))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return self.next().first - timedelta(days=1)

    def next(self) -> "Month":
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def label(self) -> str:
        """``May 2024``: the document name's form."""
        return self.first.strftime("%B %Y")


def zone(name: str) -> ZoneInfo:
    """The operator's zone; a ValueError naming it when the name is unknown."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    """The operator's calendar date at ``instant``."""
    return instant.astimezone(tz).date()


def start_of(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant the local ``day`` begins (00:00 local; correct across DST changes)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


@dataclass(frozen=True)
class Validity:
    """An MTB validity for a month: ``[valid_from, valid_until)`` in UTC, and the local dates
    the API shows (``validFrom``, ``validUntil`` = the month's last day)."""

    month: Month
    valid_from: datetime
    valid_until: datetime

    @property
    def first_day(self) -> date:
        return self.month.first

    @property
    def last_day(self) -> date:
        return self.month.last


def month_validity(month: Month, tz: ZoneInfo) -> Validity:
    """The whole calendar month in ``tz``."""
    return Validity(month, start_of(month.first, tz), start_of(month.next().first, tz))
