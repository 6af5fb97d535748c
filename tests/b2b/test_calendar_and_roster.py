"""Months in the operator's zone, the roster parser's row-level errors, the body hash, and the
reconciliation plan as a pure function."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from server.b2b.calendar import Month, local_date, month_validity, zone
from server.b2b.reconcile import Current, HrData, Profile, reconcile, summary
from server.b2b.roster import RosterError, body_hash, parse
from server.b2b.subscription import Dates, Plan

BERLIN = zone("Europe/Berlin")


def test_a_month_in_berlin_is_local_midnight_to_midnight_across_dst():
    march = month_validity(Month(2026, 3), BERLIN)  # DST starts 29 March
    assert march.valid_from == datetime(2026, 2, 28, 23, 0, tzinfo=timezone.utc)
    assert march.valid_until == datetime(2026, 3, 31, 22, 0, tzinfo=timezone.utc)
    december = month_validity(Month(2026, 12), zone("UTC"))
    assert (december.valid_from, december.valid_until) == (datetime(2026, 12, 1, tzinfo=timezone.utc),
                                                          datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert local_date(datetime(2026, 4, 30, 22, 30, tzinfo=timezone.utc), BERLIN) == date(2026, 5, 1)
    assert Month.parse("2024-05").label() == "May 2024" and str(Month(2024, 12).next()) == "2025-01"
    assert Month(2024, 2).last == date(2024, 2, 29)
    for bad in ("2024-13", "24-05", "2024/05", "May"):
        with pytest.raises(ValueError):
            Month.parse(bad)
    with pytest.raises(ValueError):
        zone("Mars/Olympus")


def good(hr_id: str = "H1", **extra):
    return {"firstName": "A", "lastName": "B", "email": "a@example.com", "hrId": hr_id, "startDate": "2024-01-01",
            **extra}


def test_the_parser_names_every_bad_row_and_field():
    body = {"syncId": "s", "employees": [good(), good("H2", email="x"), good("H1"), "row",
                                         good("H4", startDate=20240101), good("H5", absences=[{"startDate": "2024-02-02",
                                                                                             "endDate": "2024-02-01"}]),
                                         good("H6", plan={"type": "split-pay-plan"}), good("H7", colour="blue")]}
    with pytest.raises(RosterError) as caught:
        parse(body)
    fields = [(d["index"], d["field"]) for d in caught.value.details]
    assert fields == [(1, "employees[1].email"), (2, "employees[2].hrId"), (3, "employees[3]"),
                      (4, "employees[4].startDate"), (5, "employees[5].absences[0]"), (6, "employees[6].plan"),
                      (7, "employees[7].colour")]
    head, rows = parse({"syncId": "s", "employees": [good()]})
    assert head.syncId == "s" and rows[0].startDate == date(2024, 1, 1) and not head.allowEmptyRoster
    for bad in ([], {"employees": []}, {"syncId": "", "employees": []}, {"syncId": "s", "employees": {}}):
        with pytest.raises(RosterError):
            parse(bad)


def test_the_body_hash_ignores_spacing_and_member_order_only():
    assert body_hash({"a": 1, "b": [1, 2]}) == body_hash({"b": [1, 2], "a": 1})
    assert body_hash({"a": 1, "b": [1, 2]}) != body_hash({"a": 1, "b": [2, 1]})


def current(employee_id: int, hr_id: str, status: str = "active", **hr) -> Current:
    profile = Profile("A", "B", "a@example.com", None, None, Plan())
    data = HrData(start_at=date(2024, 1, 1), **hr)
    return Current(employee_id, hr_id, profile, data, status, Dates(start_at=date(2024, 1, 1)), Month(2026, 5))


def test_reconcile_plans_adds_updates_offboards_terminations_and_pauses():
    _, rows = parse({"syncId": "s", "employees": [
        good("KEEP"), good("NEW"), good("RENAMED", firstName="Z"), good("LEAVING", terminationDate="2026-06-30"),
        good("ABSENT", absences=[{"startDate": "2026-06-01", "endDate": None}])]})
    stored = [current(1, "KEEP"), current(2, "RENAMED"), current(3, "LEAVING"), current(4, "ABSENT"),
              current(5, "GONE"), current(6, "LONG-GONE", "cancelled", offboarded_on=date(2025, 1, 1))]
    plan = reconcile(rows, stored, date(2026, 5, 14), Plan())
    assert summary(plan) == {"added": 1, "updated": 3, "offboarded": 1, "unchanged": 1}
    by_hr = {c.hr_id: c for c in plan.changes}
    assert by_hr["NEW"].kind == "add" and by_hr["NEW"].after == "active"
    assert by_hr["RENAMED"].event is None and by_hr["RENAMED"].profile.first_name == "Z"
    assert (by_hr["LEAVING"].event, by_hr["LEAVING"].dates.cancelled_at) == ("schedule-cancellation", date(2026, 7, 1))
    assert (by_hr["ABSENT"].event, by_hr["ABSENT"].dates.paused_at) == ("schedule-pause", date(2026, 6, 1))
    assert (by_hr["GONE"].kind, by_hr["GONE"].event, by_hr["GONE"].dates.cancelled_at) == \
        ("offboard", "cancel", date(2026, 5, 14))
    assert "LONG-GONE" not in by_hr
    back = reconcile([r for r in parse({"syncId": "s", "employees": [good("LONG-GONE")]})[1]],
                     [stored[5]], date(2026, 5, 14), Plan())
    [rehire] = back.changes
    assert (rehire.event, rehire.after, rehire.hr.start_at) == ("rehire", "active", date(2026, 5, 14))
