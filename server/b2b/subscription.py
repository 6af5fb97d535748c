"""An employee's subscription: its status machine, its dates and its plan.

The status is what the dates say on a given day (:func:`status_on`); the dates change when an
HR sync says so (start date, termination date, absences, left out of the roster) and the day
moves on. Every change of status must be an edge of :data:`TRANSITIONS`; anything else is a
bug and raises :class:`IllegalTransition` instead of reaching an employer.

The status machine (this table is :data:`TRANSITIONS` below, row for row)
=========================================================================

======================  ======================  ======================  ======  ===================================
from                    to                      event                   by      what happened
======================  ======================  ======================  ======  ===================================
pending                 active                  start                   time    ``startAt`` reached
pending                 scheduled-pause         start                   time    ``startAt`` reached, a pause ahead
pending                 paused                  start                   time    ``startAt`` reached in a paused month
pending                 scheduled-reactivation  start                   time    ... with the pause's end known
pending                 scheduled-cancellation  schedule-cancellation   sync    termination date before the start
pending                 cancelled               cancel                  sync    left out of the roster
active                  scheduled-pause         schedule-pause          sync    an absence covers a future month
active                  paused                  pause                   sync    an absence covers the current month
                                                                                (not yet ticketed), open-ended
active                  scheduled-reactivation  pause                   sync    as above, with a known end
active                  scheduled-cancellation  schedule-cancellation   sync    a termination date
active                  cancelled               cancel                  sync    left out of the roster
scheduled-pause         active                  withdraw-pause          sync    the absence was shortened or removed
scheduled-pause         paused                  pause                   time    ``pausedAt`` reached, no end known
scheduled-pause         scheduled-reactivation  pause                   time    ``pausedAt`` reached, end known
scheduled-pause         scheduled-cancellation  schedule-cancellation   sync    a termination date
scheduled-pause         cancelled               cancel                  sync    left out of the roster
paused                  active                  resume                  sync    the absence was removed
paused                  scheduled-pause         resume                  sync    the absence was moved to a later month
paused                  scheduled-reactivation  schedule-reactivation   sync    the absence got an end
paused                  scheduled-cancellation  schedule-cancellation   sync    a termination date
paused                  cancelled               cancel                  sync    left out of the roster
scheduled-reactivation  active                  reactivate              time    ``reactivatedAt`` reached (or the
                                                                        / sync  absence was removed)
scheduled-reactivation  scheduled-pause         reactivate              time    ... with another absence ahead
scheduled-reactivation  paused                  withdraw-reactivation   sync    the absence became open-ended
scheduled-reactivation  scheduled-cancellation  schedule-cancellation   sync    a termination date
scheduled-reactivation  cancelled               cancel                  sync    left out of the roster
scheduled-cancellation  cancelled               cancel                  time    ``cancelledAt`` reached (or left
                                                                        / sync  out of the roster)
scheduled-cancellation  active                  withdraw-cancellation   sync    the termination date was removed
scheduled-cancellation  pending                 withdraw-cancellation   sync    ... before the start
scheduled-cancellation  scheduled-pause         withdraw-cancellation   sync    ... with a pause ahead
scheduled-cancellation  paused                  withdraw-cancellation   sync    ... during an open-ended pause
scheduled-cancellation  scheduled-reactivation  withdraw-cancellation   sync    ... during a pause with an end
cancelled               pending                 rehire                  sync    back on the roster, starting later
cancelled               active                  rehire                  sync    back on the roster, starting now
cancelled               scheduled-pause         rehire                  sync    ... with an absence ahead
cancelled               paused                  rehire                  sync    ... during an open-ended absence
cancelled               scheduled-reactivation  rehire                  sync    ... during an absence with an end
cancelled               scheduled-cancellation  rehire                  sync    ... with a termination date ahead
======================  ======================  ======================  ======  ===================================

The dates (all operator-local dates, see :mod:`server.b2b.calendar`):

- ``startAt``: the first day covered (the roster's ``startDate``, or the rehire day);
- ``pausedAt``: the first day of the first paused month; ``reactivatedAt``: the first day
  after the pause (None: open-ended, "a pause does not lift itself");
- ``cancelledAt``: the first day *not* covered (termination date + 1 day; the sync day when
  the employee is left out of the roster).

Cancellation wins over a pause; a pause only ever covers whole calendar months.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from .calendar import Month

Status = Literal["pending", "active", "scheduled-pause", "paused", "scheduled-reactivation",
                 "scheduled-cancellation", "cancelled"]
STATUSES: tuple[Status, ...] = ("pending", "active", "scheduled-pause", "paused", "scheduled-reactivation",
                                "scheduled-cancellation", "cancelled")

TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "active"): "start",
    ("pending", "scheduled-pause"): "start",
    ("pending", "paused"): "start",
    ("pending", "scheduled-reactivation"): "start",
    ("pending", "scheduled-cancellation"): "schedule-cancellation",
    ("pending", "cancelled"): "cancel",
    ("active", "scheduled-pause"): "schedule-pause",
    ("active", "paused"): "pause",
    ("active", "scheduled-reactivation"): "pause",
    ("active", "scheduled-cancellation"): "schedule-cancellation",
    ("active", "cancelled"): "cancel",
    ("scheduled-pause", "active"): "withdraw-pause",
    ("scheduled-pause", "paused"): "pause",
    ("scheduled-pause", "scheduled-reactivation"): "pause",
    ("scheduled-pause", "scheduled-cancellation"): "schedule-cancellation",
    ("scheduled-pause", "cancelled"): "cancel",
    ("paused", "active"): "resume",
    ("paused", "scheduled-pause"): "resume",
    ("paused", "scheduled-reactivation"): "schedule-reactivation",
    ("paused", "scheduled-cancellation"): "schedule-cancellation",
    ("paused", "cancelled"): "cancel",
    ("scheduled-reactivation", "active"): "reactivate",
    ("scheduled-reactivation", "scheduled-pause"): "reactivate",
    ("scheduled-reactivation", "paused"): "withdraw-reactivation",
    ("scheduled-reactivation", "scheduled-cancellation"): "schedule-cancellation",
    ("scheduled-reactivation", "cancelled"): "cancel",
    ("scheduled-cancellation", "cancelled"): "cancel",
    ("scheduled-cancellation", "active"): "withdraw-cancellation",
    ("scheduled-cancellation", "pending"): "withdraw-cancellation",
    ("scheduled-cancellation", "scheduled-pause"): "withdraw-cancellation",
    ("scheduled-cancellation", "paused"): "withdraw-cancellation",
    ("scheduled-cancellation", "scheduled-reactivation"): "withdraw-cancellation",
    ("cancelled", "pending"): "rehire",
    ("cancelled", "active"): "rehire",
    ("cancelled", "scheduled-pause"): "rehire",
    ("cancelled", "paused"): "rehire",
    ("cancelled", "scheduled-reactivation"): "rehire",
    ("cancelled", "scheduled-cancellation"): "rehire",
}


class IllegalTransition(Exception):
    """A change of dates would move a subscription along an edge the machine does not have."""


@dataclass(frozen=True)
class Dates:
    """A subscription's dates; the status and ``nextTicketAt`` follow from them and the day."""

    start_at: date
    paused_at: date | None = None
    reactivated_at: date | None = None
    cancelled_at: date | None = None


def status_on(dates: Dates, today: date) -> Status:
    """What the subscription is on ``today``."""
    if dates.cancelled_at is not None:
        return "cancelled" if dates.cancelled_at <= today else "scheduled-cancellation"
    if dates.start_at > today:
        return "pending"
    if dates.paused_at is not None:
        if dates.paused_at > today:
            return "scheduled-pause"
        if dates.reactivated_at is None:
            return "paused"
        if dates.reactivated_at > today:
            return "scheduled-reactivation"
    return "active"


def transition(before: Status, after: Status) -> str | None:
    """The event that moves ``before`` to ``after`` (None: no change); IllegalTransition when
    the machine has no such edge."""
    if before == after:
        return None
    event = TRANSITIONS.get((before, after))
    if event is None:
        raise IllegalTransition(f"a subscription cannot go from {before} to {after}")
    return event


def covered(dates: Dates, day: date) -> bool:
    """Whether ``day`` is a day the employer pays a ticket for."""
    if day < dates.start_at or (dates.cancelled_at is not None and day >= dates.cancelled_at):
        return False
    return not paused_on(dates, day)


def paused_on(dates: Dates, day: date) -> bool:
    if dates.paused_at is None or day < dates.paused_at:
        return False
    return dates.reactivated_at is None or day < dates.reactivated_at


def first_covered_day(dates: Dates, month: Month, since: date | None = None) -> date | None:
    """The first day of ``month`` (from ``since`` on) the employer pays a ticket for. Covered
    days of a month are one run (pauses are whole months, cancellation one cut-off), so the
    first candidate day decides."""
    day = max(month.first, dates.start_at, since or month.first)
    return day if day <= month.last and covered(dates, day) else None


def ticket_month_due(dates: Dates, today: date) -> Month | None:
    """The month a ticket is due for on ``today``: the current month when today is covered.
    Earlier months are never issued late (their validity is over); a later month's ticket is
    issued on its first covered day. Idempotence is the caller's: one ticket per month."""
    return Month.of(today) if covered(dates, today) else None


def next_ticket_at(dates: Dates, today: date, last_ticket: Month | None, *, horizon: int = 24) -> date | None:
    """The day the next ticket will be issued (``nextTicketAt``): the first covered day, from
    today on, of the first month not yet ticketed (today itself while the current month's
    ticket is still due); None when none is planned within ``horizon`` months (cancelled, or
    an open-ended pause)."""
    month = Month.of(today)
    if last_ticket is not None and last_ticket >= month:
        month = last_ticket.next()
    for _ in range(horizon):
        day = first_covered_day(dates, month, today)
        if day is not None:
            return day
        month = month.next()
    return None


# --- plans ------------------------------------------------------------------------------------

PLAN_TYPES = ("fully-subsidized-plan", "split-pay-plan")
CONTRACT_STATUSES = ("accepted",)


@dataclass(frozen=True)
class Plan:
    """Who pays: the employer alone (``fully-subsidized-plan``) or the employer and the
    employee, whose monthly contribution is ``contribution`` in the fare's currency."""

    type: str = "fully-subsidized-plan"
    contribution: float | None = None
    contract_signing_status: str = "accepted"

    def __post_init__(self) -> None:
        if self.type not in PLAN_TYPES:
            raise ValueError(f"plan type must be one of {', '.join(PLAN_TYPES)}")
        if (self.type == "split-pay-plan") != (self.contribution is not None):
            raise ValueError("a split-pay-plan needs the employee's contribution; a fully-subsidized-plan has none")
        if self.contribution is not None and not 0 < self.contribution < 1_000_000:
            raise ValueError("the employee's contribution must be a positive amount")

    def contribution_json(self, currency: str) -> dict[str, object] | None:
        """``{"label": "€29.00", "value": 29.0}`` (None for a fully subsidised plan)."""
        if self.contribution is None:
            return None
        symbol = CURRENCY_SYMBOLS.get(currency)
        label = f"{symbol}{self.contribution:.2f}" if symbol else f"{self.contribution:.2f} {currency}"
        return {"label": label, "value": round(self.contribution, 2)}


CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF ", "SEK": "kr "}
