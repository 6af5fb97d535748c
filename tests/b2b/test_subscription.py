"""The subscription status machine: every edge of the table is reached by what HR syncs and
the days actually do (and nothing outside it is), with the event the table names; plus the
dates a pause, a termination and an offboarding give, ``nextTicketAt``, and plans."""
from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from server.b2b.calendar import Month
from server.b2b.reconcile import Current, HrData, dates_for, pause_window, reconcile, refresh
from server.b2b.roster import RosterRow
from server.b2b.subscription import (STATUSES, TRANSITIONS, Dates, IllegalTransition, Plan, next_ticket_at,
                                     status_on, ticket_month_due, transition)

D0 = date(2026, 5, 14)
STARTS = (date(2025, 1, 1), date(2026, 5, 20), date(2026, 6, 1), date(2026, 7, 1))
TERMINATIONS = (None, None, date(2026, 5, 16), date(2026, 6, 20), date(2026, 8, 10))
ABSENCES = ((), (), ((date(2026, 6, 1), date(2026, 6, 30)),), ((date(2026, 6, 1), None),),
            ((date(2026, 5, 1), None),), ((date(2026, 5, 1), date(2026, 7, 31)),),
            ((date(2026, 7, 1), date(2026, 7, 31)),), ((date(2026, 6, 3), date(2026, 8, 31)),))


def roster_row(start: date, termination: date | None, absences: tuple) -> RosterRow | None:
    if termination is not None and termination < start:
        return None
    return RosterRow.model_validate({
        "firstName": "A", "lastName": "B", "email": "a@example.com", "hrId": "H1", "startDate": start.isoformat(),
        "terminationDate": termination.isoformat() if termination else None,
        "absences": [{"startDate": a.isoformat(), "endDate": b.isoformat() if b else None} for a, b in absences]})


def simulate(steps: list[tuple[date, RosterRow | None]], seen: dict[tuple[str, str], set[str]]) -> None:
    """Run syncs and daily roll-overs as the server does, recording every status change."""
    current: Current | None = None

    def record(before: str | None, after: str, event: str | None) -> None:
        if before is not None and before != after:
            seen.setdefault((before, after), set()).add(event or "")

    for day, row in steps:
        if current is not None:
            change = refresh(current, day)
            if change is not None:
                record(change.before, change.after, change.event)
                current = replace(current, status=change.after, dates=change.dates)
        plan = reconcile([row] if row else [], [current] if current else [], day, Plan())
        for change in plan.changes:
            record(change.before, change.after, change.event)
            current = Current(change.employee_id or 1, change.hr_id, change.profile, change.hr, change.after,
                              change.dates, current.last_ticket if current else None)
        if current is not None and ticket_month_due(current.dates, day):
            current = replace(current, last_ticket=Month.of(day))


def test_every_edge_of_the_table_happens_and_nothing_else():
    rng = random.Random(13)
    rows = [r for r in (roster_row(s, t, a) for s in STARTS for t in TERMINATIONS for a in ABSENCES) if r]
    seen: dict[tuple[str, str], set[str]] = {}
    for _ in range(6000):
        day = D0
        steps = []
        for _ in range(rng.randint(2, 4)):
            steps.append((day, rng.choice(rows) if rng.random() > 0.2 else None))
            day += timedelta(days=rng.choice((0, 1, 3, 18, 20, 35, 50)))
        if steps[0][1] is not None:
            simulate(steps, seen)
    assert set(seen) == set(TRANSITIONS), sorted(set(TRANSITIONS) - set(seen))
    for edge, events in seen.items():
        assert events == {TRANSITIONS[edge]}, (edge, events)


@pytest.mark.parametrize("before", STATUSES)
@pytest.mark.parametrize("after", STATUSES)
def test_transition_follows_the_table_exactly(before, after):
    if before == after:
        assert transition(before, after) is None
    elif (before, after) in TRANSITIONS:
        assert transition(before, after) == TRANSITIONS[(before, after)]
    else:
        with pytest.raises(IllegalTransition):
            transition(before, after)


def test_cancelled_does_not_pause_and_pending_does_not_unstart():
    assert ("cancelled", "cancelled") not in TRANSITIONS
    assert not any(after == "pending" for (before, after) in TRANSITIONS if before not in ("cancelled",
                                                                                          "scheduled-cancellation"))


def test_status_on_the_dates():
    dates = Dates(start_at=date(2026, 5, 1), paused_at=date(2026, 7, 1), reactivated_at=date(2026, 9, 1),
                  cancelled_at=None)
    assert [status_on(dates, d) for d in (date(2026, 4, 30), date(2026, 6, 30), date(2026, 7, 1), date(2026, 9, 1))] \
        == ["pending", "scheduled-pause", "scheduled-reactivation", "active"]
    assert status_on(replace(dates, reactivated_at=None), date(2026, 8, 1)) == "paused"
    assert status_on(replace(dates, cancelled_at=date(2026, 6, 1)), date(2026, 5, 20)) == "scheduled-cancellation"
    assert status_on(replace(dates, cancelled_at=date(2026, 6, 1)), date(2026, 6, 1)) == "cancelled"


def test_a_pause_covers_whole_months_only_and_never_a_ticketed_month():
    may14 = date(2026, 5, 14)
    assert pause_window(((date(2026, 6, 1), date(2026, 6, 30)),), may14, True) == (date(2026, 6, 1), date(2026, 7, 1))
    assert pause_window(((date(2026, 6, 2), date(2026, 6, 30)),), may14, True) == (None, None)
    assert pause_window(((date(2026, 5, 20), date(2026, 7, 31)),), may14, True) == (date(2026, 6, 1), date(2026, 8, 1))
    assert pause_window(((date(2026, 5, 1), None),), may14, True) == (date(2026, 6, 1), None)
    assert pause_window(((date(2026, 5, 1), None),), may14, False) == (date(2026, 5, 1), None)
    two = ((date(2026, 9, 1), date(2026, 9, 30)), (date(2026, 7, 1), date(2026, 7, 31)))
    assert pause_window(two, may14, True) == (date(2026, 7, 1), date(2026, 8, 1))


def test_termination_and_offboarding_dates():
    hr = HrData(start_at=date(2025, 1, 1), termination_date=date(2026, 6, 15))
    assert dates_for(hr, D0, True).cancelled_at == date(2026, 6, 16)  # the first day not covered
    assert dates_for(replace(hr, offboarded_on=D0), D0, True).cancelled_at == D0
    assert dates_for(replace(hr, termination_date=None), D0, True).cancelled_at is None


def test_next_ticket_at():
    active = Dates(start_at=date(2025, 1, 1))
    assert next_ticket_at(active, D0, None) == D0  # this month's is still due
    assert next_ticket_at(active, D0, Month(2026, 5)) == date(2026, 6, 1)
    later = Dates(start_at=date(2026, 7, 15))
    assert next_ticket_at(later, D0, None) == date(2026, 7, 15)
    paused = Dates(start_at=date(2025, 1, 1), paused_at=date(2026, 6, 1), reactivated_at=date(2026, 8, 1))
    assert next_ticket_at(paused, D0, Month(2026, 5)) == date(2026, 8, 1)
    assert next_ticket_at(replace(paused, reactivated_at=None), D0, Month(2026, 5)) is None
    ending = Dates(start_at=date(2025, 1, 1), cancelled_at=date(2026, 6, 1))
    assert next_ticket_at(ending, D0, Month(2026, 5)) is None
    ending_mid = Dates(start_at=date(2025, 1, 1), cancelled_at=date(2026, 6, 10))
    assert next_ticket_at(ending_mid, D0, Month(2026, 5)) == date(2026, 6, 1)
    assert ticket_month_due(ending_mid, date(2026, 6, 10)) is None


def test_plans():
    assert Plan().contribution_json("EUR") is None
    assert Plan("split-pay-plan", 29.0).contribution_json("EUR") == {"label": "€29.00", "value": 29.0}
    assert Plan("split-pay-plan", 5.5).contribution_json("NOK") == {"label": "5.50 NOK", "value": 5.5}
    for bad in (("split-pay-plan", None), ("fully-subsidized-plan", 10.0), ("free-plan", None),
                ("split-pay-plan", -1.0)):
        with pytest.raises(ValueError):
            Plan(*bad)
