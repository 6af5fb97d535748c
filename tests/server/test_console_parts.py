"""The console's pure parts: the chart's geometry, durations, the operator's day, reasons,
where to go after signing in, the buttons a state allows, paging, an event's place and device."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from yarl import URL

from server.console.activity import day_bounds
from server.console.chart import BOTTOM, HEIGHT, TOP, nice_ceiling, stacked_minutes
from server.console.fleet_queries import DeviceRow
from server.console.login import safe_next
from server.console.render import Pager, duration, when
from server.console.tickets import clean_reason, event_device, event_place, possible_actions
from server.store import DeviceReport, TicketRecord

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, ceiling", [(0, 1), (1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100),
                                            (999, 1000), (1001, 2000)])
def test_nice_ceiling(value, ceiling):
    assert nice_ceiling(value) == ceiling


def test_bars_stack_by_code_and_scale_to_the_busiest_minute():
    counts = [("2026-03-02T08:00", 0, 6), ("2026-03-02T08:00", 7, 2), ("2026-03-02T08:05", 0, 1),
              ("2026-03-02T07:59", 0, 99), ("2026-03-02T09:00", 0, 99)]  # outside the hour: left out
    chart = stacked_minutes(counts, START, 60)
    assert chart.total == 9
    first = [b for b in chart.bars if b.minute == START]
    assert [(b.code, b.count) for b in first] == [(0, 6), (7, 2)]
    plot = HEIGHT - TOP - BOTTOM
    assert first[0].height == pytest.approx(plot * 6 / 10)  # the busiest minute (8) scales to 10
    assert first[0].y + first[0].height == pytest.approx(TOP + plot)  # code 0 at the bottom
    assert first[1].y + first[1].height == pytest.approx(first[0].y)  # code 7 on top of it
    assert [t.value for t in chart.y_ticks] == [0, 5, 10]
    assert [words for _, words in chart.legend] == ["0 · accepted", "7 · on the deny list"]
    assert len(chart.x_ticks) <= 8 and all(t.minute.minute % 10 == 0 for t in chart.x_ticks)


def test_an_empty_chart_has_axes_and_no_bars():
    chart = stacked_minutes([], START, 180)
    assert chart.bars == [] and chart.total == 0 and chart.legend == []
    assert chart.y_ticks and chart.x_ticks


@pytest.mark.parametrize("seconds, text", [(None, "never"), (-5, "0 s"), (42, "42 s"), (119, "119 s"), (120, "2 min"),
                                           (7199, "119 min"), (7200, "2 h 0 min"), (3 * 86400 + 3600, "3 d 1 h")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_the_operators_day_follows_daylight_saving():
    berlin = ZoneInfo("Europe/Berlin")
    start, end = day_bounds(datetime(2026, 3, 29, 12, 0, tzinfo=timezone.utc), berlin)  # clocks go forward
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc)
    assert end - start == timedelta(hours=23)
    start, end = day_bounds(datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc), berlin)  # already the 29th there
    assert start == datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc)


def test_a_time_shows_local_with_utc_for_mouse_keyboard_and_screen_reader():
    text = str(when(datetime(2026, 7, 1, 10, 0, 5, tzinfo=timezone.utc), ZoneInfo("Europe/Stockholm")))
    assert text == ('<time datetime="2026-07-01T10:00:05Z" tabindex="0" role="time" '
                    'aria-label="2026-07-01 12:00:05 CEST (2026-07-01 10:00:05 UTC)">2026-07-01 12:00:05 CEST'
                    '<span class="utc"> (2026-07-01 10:00:05 UTC)</span></time>')
    to_the_minute = str(when(datetime(2026, 7, 1, 10, 0, 5, tzinfo=timezone.utc), ZoneInfo("UTC"), seconds=False))
    assert 'aria-label="2026-07-01 10:00 UTC (2026-07-01 10:00:05 UTC)">2026-07-01 10:00 UTC<' in to_the_minute
    assert "&mdash;" in str(when(None, ZoneInfo("UTC")))


@pytest.mark.parametrize("reason, kept", [("lost phone", "lost phone"), ("  trimmed  ", "trimmed"), ("ab", None),
                                          ("x" * 500, "x" * 500), ("x" * 501, None), ("tab\there", None),
                                          ("rtl\u202eoverride", None), ("Ärger über Kontrolle", "Ärger über Kontrolle"),
                                          (None, None)])
def test_a_reason_is_kept_as_typed_or_refused(reason, kept):
    assert clean_reason(reason) == kept


@pytest.mark.parametrize("target, kept", [
    ("/console/tickets?q=1", "/console/tickets?q=1"), ("/console/", "/console/"), ("", None), (None, None),
    ("/console", None), ("/consolex/y", None), ("//evil.example/console/", None), ("https://evil.example/console/", None),
    ("/console\\evil", None), ("/api/v1/ticket", None), ("javascript:alert(1)", None)])
def test_after_sign_in_only_this_console(target, kept):
    assert safe_next(target, "/console") == kept


def record(state: str, *, until: timedelta = timedelta(hours=1)) -> TicketRecord:
    now = datetime.now(timezone.utc)
    return TicketRecord(ticket_id="t", pid=1, bundle_id="b", manifest_id="m", settlement_id="s", issued_at=now,
                        valid_from=now - timedelta(hours=1), valid_until=now + until,
                        fare={"amount": 10.0, "currency": "SEK", "vatAmount": 0.6, "vatPercent": 6.0}, state=state,
                        payload="", mtb="")


@pytest.mark.parametrize("state, actions", [("active", ["freeze", "refund", "revoke"]), ("frozen", ["thaw", "refund", "revoke"]),
                                            ("recovered", ["revoke"]), ("replaced", []), ("refunded", []), ("revoked", [])])
def test_the_buttons_are_what_the_state_machine_allows(state, actions):
    assert possible_actions(record(state), datetime.now(timezone.utc)) == actions


def test_no_refund_button_once_the_validity_is_over():
    assert possible_actions(record("active", until=-timedelta(seconds=1)), datetime.now(timezone.utc)) == ["freeze",
                                                                                                          "revoke"]


def test_pager_keeps_the_other_parameters():
    pager = Pager(2, 5, 12, URL("/console/tickets?by=traveller&q=a%20b&page=2"))
    assert (pager.offset, pager.last, pager.first_row, pager.last_row) == (5, 3, 6, 10)
    assert pager.link(3) == "/console/tickets?by=traveller&q=a+b&page=3"
    empty = Pager(1, 5, 0, URL("/console/deny-list"))
    assert (empty.last, empty.first_row, empty.last_row) == (1, 0, 0)
    second = Pager(1, 5, 12, URL("/console/devices/val1?page=2"), "history")  # a page's second list
    assert second.link(2) == "/console/devices/val1?page=2&history=2"


def test_an_events_place_and_device():
    event = {"stopArea": {"pid": 1, "stopAreaId": "SA1"}, "zone": {"pid": 1, "zoneId": "A"},
             "geo": {"lat": 55.6, "long": 13.0}, "modeOfTransport": "bus",
             "validator": {"validatorId": "V1", "location": "vehicle", "sublocation": "door 1"}}
    assert event_place(event) == "stop area SA1, zone A, 55.6, 13.0, bus"
    assert event_device(event) == "V1, vehicle, door 1"
    assert event_place({}) == "—" and event_device({"deviceReference": {"did": "phone-9"}}) == "ticket device phone-9"
    assert event_place({"stopArea": "not an object", "geo": {"lat": 1}}) == "—"


def test_when_a_device_last_fetched_the_deny_list_by_its_report():
    def report(ages: object) -> DeviceReport:
        return DeviceReport("val1", START, "1.0", 0, 0, json.dumps({"listAgesSeconds": ages}))

    assert report({"denyList": 90.0, "uses": 3}).deny_fetched_at() == START - timedelta(seconds=90)
    assert report({"denyList": 0}).deny_fetched_at() == START
    for ages in ({"denyList": None}, {"uses": 3}, {"denyList": -1}, {"denyList": True}, {"denyList": "9"}, [], None):
        assert report(ages).deny_fetched_at() is None, ages  # never loaded, not given, or nonsense: unknown
    assert DeviceReport("val1", START, None, 0, 0, "not json").deny_fetched_at() is None


def test_a_device_of_another_participant_is_named_so():
    def row(device: str) -> DeviceRow:
        return DeviceRow(device, None, START, None, 0, 0, {})

    assert row("4321:val-of-4321").participant == "4321"
    assert row("val1").participant is None and row("x:y").participant is None
