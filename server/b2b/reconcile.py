"""HR sync reconciliation as a pure function: the roster (by ``hrId``) against the employees
an integration manages today -> a :class:`SyncPlan` of adds, updates and offboards, each with
the subscription's new dates and status and the machine's event (so terminations and absence
pauses are updates whose event says so).

Nothing here touches the store or the clock; :mod:`server.b2b.service` applies a plan in one
transaction. The same :func:`dates_for` runs every day for every employee (the roll-over job),
so a date reached moves the status exactly as a sync would.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from .calendar import Month
from .roster import Absence, RosterRow
from .subscription import Dates, Plan, Status, status_on, transition

DAY = timedelta(days=1)


@dataclass(frozen=True)
class HrData:
    """What the HR system says about an employee's coverage; the subscription's dates follow
    from it (:func:`dates_for`)."""

    start_at: date
    termination_date: date | None = None
    offboarded_on: date | None = None  # the sync day the employee was left out of the roster
    absences: tuple[tuple[date, date | None], ...] = ()


@dataclass(frozen=True)
class Profile:
    """The employee's own fields, as stored and as the API shows them."""

    first_name: str
    last_name: str
    email: str
    profile_image: str | None
    date_of_birth: date | None
    plan: Plan


@dataclass(frozen=True)
class Current:
    """An employee the integration manages, as stored."""

    employee_id: int
    hr_id: str
    profile: Profile
    hr: HrData
    status: Status
    dates: Dates  # as stored (derived at the last change)
    last_ticket: Month | None = None  # the latest month with a live ticket

    def ticketed(self, today: date) -> bool:
        """Whether the month of ``today`` already has its ticket."""
        return self.last_ticket is not None and self.last_ticket >= Month.of(today)


def pause_window(absences: tuple[tuple[date, date | None], ...], today: date,
                 current_month_ticketed: bool) -> tuple[date | None, date | None]:
    """(pausedAt, reactivatedAt) of the first run of whole calendar months an absence covers,
    from the current month on (the current month only while its ticket is not issued: a
    ticket in use is never paused after the fact). reactivatedAt None: open-ended."""
    first_month = Month.of(today) if not current_month_ticketed else Month.of(today).next()
    best: tuple[date, date | None] | None = None
    for start, end in absences:
        month = Month.of(start) if start == Month.of(start).first else Month.of(start).next()
        month = max(month, first_month)
        if end is not None and month.last > end:
            continue  # covers no whole month from here on
        if end is None:
            window: tuple[date, date | None] = (month.first, None)
        else:
            last = Month.of(end) if end == Month.of(end).last else Month.of(Month.of(end).first - DAY)
            window = (month.first, last.next().first)
        if best is None or window[0] < best[0]:
            best = window
    return best if best is not None else (None, None)


def dates_for(hr: HrData, today: date, current_month_ticketed: bool) -> Dates:
    cancels = [d for d in ((hr.termination_date + DAY) if hr.termination_date else None, hr.offboarded_on)
               if d is not None]
    paused_at, reactivated_at = pause_window(hr.absences, today, current_month_ticketed)
    return Dates(start_at=hr.start_at, paused_at=paused_at, reactivated_at=reactivated_at,
                 cancelled_at=min(cancels) if cancels else None)


def profile_of(row: RosterRow, company_plan: Plan) -> Profile:
    plan = company_plan if row.plan is None else Plan(row.plan.type, row.plan.employeeContributionAmount)
    return Profile(row.firstName, row.lastName, row.email, row.profileImage, row.dateOfBirth, plan)


def absences_of(rows: list[Absence]) -> tuple[tuple[date, date | None], ...]:
    return tuple(sorted((a.startDate, a.endDate) for a in rows))


@dataclass(frozen=True)
class Change:
    """One employee's change: a new one (``employee_id`` None), an update or an offboarding."""

    kind: str  # "add", "update", "offboard"
    hr_id: str
    employee_id: int | None
    profile: Profile
    hr: HrData
    dates: Dates
    before: Status | None
    after: Status
    event: str | None  # the machine's event, None when the status stays
    index: int | None = None  # the roster row

    @property
    def subscription_changed(self) -> bool:
        return self.kind == "add" or self.event is not None or self.dates_changed

    dates_changed: bool = False


@dataclass
class SyncPlan:
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    def events(self, *names: str) -> list[Change]:
        return [c for c in self.changes if c.event in names]


def hr_for_row(row: RosterRow, before: Current | None, today: date) -> HrData:
    """The HR data a row asks for. ``startAt`` follows ``startDate`` only until the
    subscription starts (a started subscription cannot un-start); an offboarded employee back
    on the roster is rehired from ``max(startDate, today)``."""
    start = row.startDate
    if before is not None:
        if before.hr.offboarded_on is not None:
            start = max(row.startDate, today)
        elif before.status != "pending" and before.hr.start_at <= today:
            start = before.hr.start_at
    return HrData(start_at=start, termination_date=row.terminationDate, offboarded_on=None,
                  absences=absences_of(row.absences))


def reconcile(rows: list[RosterRow], current: list[Current], today: date, company_plan: Plan) -> SyncPlan:
    """The plan that brings the stored employees to the roster. Raises IllegalTransition if
    a change would break the status machine (a bug, never a client's fault)."""
    plan = SyncPlan()
    by_hr_id = {c.hr_id: c for c in current}
    listed: set[str] = set()
    for index, row in enumerate(rows):
        listed.add(row.hrId)
        if not row.managed:
            continue
        before = by_hr_id.get(row.hrId)
        profile = profile_of(row, company_plan)
        hr = hr_for_row(row, before, today)
        ticketed = before.ticketed(today) if before else False
        dates = dates_for(hr, today, ticketed)
        after = status_on(dates, today)
        if before is None:
            plan.changes.append(Change("add", row.hrId, None, profile, hr, dates, None, after, None, index))
            continue
        old_dates = dates_for(before.hr, today, ticketed)
        if profile == before.profile and hr == before.hr and before.status == after:
            plan.unchanged += 1
            continue
        plan.changes.append(Change("update", row.hrId, before.employee_id, profile, hr, dates, before.status, after,
                                   _event(before.status, old_dates, after, today), index,
                                   dates_changed=before.dates != dates))
    for before in current:
        if before.hr_id in listed or before.status == "cancelled" or before.hr.offboarded_on is not None:
            continue
        hr = replace(before.hr, offboarded_on=today)
        dates = dates_for(hr, today, before.ticketed(today))
        after = status_on(dates, today)
        plan.changes.append(Change("offboard", before.hr_id, before.employee_id, before.profile, hr, dates,
                                   before.status, after,
                                   _event(before.status, dates_for(before.hr, today, before.ticketed(today)),
                                          after, today), dates_changed=True))
    return plan


def refresh(before: Current, today: date) -> Change | None:
    """The day's own change to a subscription (a date reached, a month ticketed), or None:
    what the roll-over job applies to every employee each run."""
    dates = dates_for(before.hr, today, before.ticketed(today))
    after = status_on(dates, today)
    if after == before.status and dates == before.dates:
        return None
    return Change("refresh", before.hr_id, before.employee_id, before.profile, before.hr, dates, before.status,
                  after, transition(before.status, after), dates_changed=dates != before.dates)


def _event(stored: Status, old_dates: Dates, after: Status, today: date) -> str | None:
    """The event of a change, checked against the machine in two steps: the stored status may
    lag the day (a date reached since the last run), then the sync's own change."""
    now = status_on(old_dates, today)
    time_event = transition(stored, now)
    return transition(now, after) or time_event


def summary(plan: SyncPlan) -> dict[str, Any]:
    return {"added": plan.count("add"), "updated": plan.count("update"), "offboarded": plan.count("offboard"),
            "unchanged": plan.unchanged}
