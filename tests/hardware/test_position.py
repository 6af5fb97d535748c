"""Position sources: the pure NMEA parser, NmeaGps over a pty, FixedPosition, SimulatedRoute."""

from __future__ import annotations

import asyncio
import datetime as dt
from functools import reduce

import pytest

from hardware.position import (
    Fix,
    FixedPosition,
    NmeaChecksumError,
    NmeaError,
    NmeaGps,
    NoFix,
    PositionSource,
    SimulatedRoute,
    parse_nmea,
)
from hardware.readers import SimulatedReader

from .conftest import Pty

UTC = dt.timezone.utc


def nmea(body: str) -> str:
    """Wrap a sentence body with ``$`` and its checksum, as a receiver does."""
    checksum = reduce(lambda acc, ch: acc ^ ord(ch), body, 0)
    return f"${body}*{checksum:02X}"


# Stockholm C, roughly: 59°19.800'N 18°03.500'E
GGA = nmea("GPGGA,101530.00,5919.800,N,01803.500,E,1,09,0.9,28.5,M,24.0,M,,")
RMC = nmea("GPRMC,101530.00,A,5919.800,N,01803.500,E,0.4,90.0,150325,,,A")
GGA_NOFIX = nmea("GPGGA,101531.00,,,,,0,00,99.9,,M,,M,,")
RMC_NOFIX = nmea("GPRMC,101531.00,V,,,,,,,150325,,,N")
LAT, LONG = 59 + 19.8 / 60, 18 + 3.5 / 60


# --- parse_nmea ------------------------------------------------------------------------


def test_parse_gga_fix():
    fix = parse_nmea(GGA)
    assert isinstance(fix, Fix)
    assert fix.lat == pytest.approx(LAT) and fix.long == pytest.approx(LONG)
    assert fix.alt == pytest.approx(28.5)
    assert fix.time is None  # GGA has no date and no reference was given
    assert fix.valid and fix.source == "GGA"


def test_parse_gga_dated_from_reference_across_midnight():
    ref = dt.datetime(2024, 12, 31, 23, 59, 59, 900000, tzinfo=UTC)
    fix = parse_nmea(nmea("GNGGA,000000.00,5919.800,N,01803.500,E,1,09,0.9,28.5,M,24.0,M,,"), ref=ref)
    assert isinstance(fix, Fix)
    assert fix.time == dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)


def test_parse_rmc_fix_with_date_and_hemispheres():
    fix = parse_nmea(RMC.encode())  # bytes straight from a reader work too
    assert isinstance(fix, Fix)
    assert fix.time == dt.datetime(2025, 3, 15, 10, 15, 30, tzinfo=UTC)
    assert fix.lat == pytest.approx(LAT) and fix.alt is None
    south_west = parse_nmea(nmea("GNRMC,101530.00,A,3352.000,S,15112.000,W,0.0,0.0,150325,,,A"))
    assert isinstance(south_west, Fix)
    assert south_west.lat == pytest.approx(-(33 + 52 / 60)) and south_west.long == pytest.approx(-(151 + 12 / 60))


@pytest.mark.parametrize("line", [GGA_NOFIX, RMC_NOFIX, nmea("GPRMC,101530.00,A,,,,,0.4,90.0,150325,,,A")])
def test_parse_no_fix(line):
    result = parse_nmea(line)
    assert isinstance(result, NoFix)


def test_parse_rmc_no_fix_keeps_time():
    result = parse_nmea(RMC_NOFIX)
    assert result == NoFix("RMC", dt.datetime(2025, 3, 15, 10, 15, 31, tzinfo=UTC))


@pytest.mark.parametrize(
    "line",
    [
        GGA[:-2] + "00",  # wrong checksum
        GGA.rsplit("*", 1)[0],  # checksum missing
        RMC.replace("5919.800", "5919.801"),  # a flipped digit in transit
    ],
)
def test_parse_bad_checksum(line):
    with pytest.raises(NmeaChecksumError):
        parse_nmea(line)


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        b"$GP\xff\xfe",
        nmea("GPGGA,101530.00,59x9.800,N,01803.500,E,1,09,0.9,28.5,M,24.0,M,,"),
        nmea("GPRMC,101530.00,A,5919.800,N,01803.500,E,0.4,90.0,991399,,,A"),  # no such date
    ],
)
def test_parse_malformed(line):
    with pytest.raises(NmeaError):
        parse_nmea(line)


def test_parse_other_sentences_ignored():
    assert parse_nmea(nmea("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")) is None
    assert parse_nmea(nmea("GPVTG,90.0,T,,M,0.4,N,0.7,K,A")) is None


# --- NmeaGps state -------------------------------------------------------------------


def test_gps_merges_rmc_date_and_gga_altitude_then_loses_and_regains_fix():
    gps = NmeaGps(reader=SimulatedReader())
    assert gps.fix_lost and gps.current() is None and gps.last_fix is None
    gps.feed(RMC)
    gps.feed(GGA)
    fix = gps.current()
    assert fix is not None and fix.source == "GGA"
    assert fix.time == dt.datetime(2025, 3, 15, 10, 15, 30, tzinfo=UTC)  # dated from RMC
    assert fix.alt == pytest.approx(28.5)
    gps.feed(RMC)
    assert gps.current().alt == pytest.approx(28.5)  # RMC borrows the recent GGA altitude

    gps.feed(GGA[:-2] + "00")  # bad checksum: counted, changes nothing
    assert gps.stats["bad_checksum"] == 1 and not gps.fix_lost

    gps.feed(RMC_NOFIX)
    assert gps.fix_lost and gps.current() is None
    last = gps.last_fix
    assert last is not None and not last.valid and last.lat == pytest.approx(LAT)

    gps.feed(GGA)
    assert not gps.fix_lost and gps.current().valid
    assert gps.stats["fixes"] == 4 and gps.stats["no_fix"] == 1


async def test_gps_fix_goes_stale_after_max_age():
    gps = NmeaGps(reader=SimulatedReader(), max_age=0.05)
    gps.feed(GGA)
    assert gps.current() is not None
    await asyncio.sleep(0.1)
    assert gps.current() is None and gps.fix_lost
    assert gps.last_fix is not None and not gps.last_fix.valid


async def test_gps_plays_back_a_recorded_log_through_a_simulated_reader():
    log = [RMC, "noise", GGA, nmea("GPGSV,1,1,00"), RMC_NOFIX]
    gps = NmeaGps(reader=SimulatedReader(log, finish=True))
    await asyncio.wait_for(gps.run(), 2.0)
    assert gps.stats == {"sentences": 5, "fixes": 2, "no_fix": 1, "bad_checksum": 0, "malformed": 1, "ignored": 1}
    assert gps.fix_lost


async def test_nmea_gps_over_pty(pty: Pty):
    gps = NmeaGps(pty.name, baudrate=4800, read_timeout=0.05, max_age=5.0)
    assert isinstance(gps, PositionSource)
    task = asyncio.create_task(gps.run())
    try:
        await asyncio.wait_for(gps.reader.connected.wait(), 2.0)
        pty.write(f"{RMC}\r\n{GGA[:-2]}00\r\n{GGA}\r\n".encode())
        await asyncio.wait_for(_until(lambda: gps.stats["sentences"] >= 3), 2.0)
        fix = gps.current()
        assert fix is not None
        assert (fix.lat, fix.long, fix.alt) == (pytest.approx(LAT), pytest.approx(LONG), pytest.approx(28.5))
        assert gps.stats["bad_checksum"] == 1

        pty.write(f"{GGA_NOFIX}\r\n".encode())
        await asyncio.wait_for(_until(lambda: gps.fix_lost), 2.0)
        assert gps.last_fix is not None and gps.last_fix.lat == pytest.approx(LAT)
    finally:
        await gps.close()
        await asyncio.wait_for(task, 2.0)


async def _until(cond) -> None:
    while not cond():
        await asyncio.sleep(0.01)


# --- FixedPosition ---------------------------------------------------------------------


async def test_fixed_position():
    when = dt.datetime(2025, 3, 15, 8, 0, tzinfo=UTC)
    pos = FixedPosition(59.3303, 18.0590, 12.0, clock=lambda: when)
    assert isinstance(pos, PositionSource)
    await pos.run()  # nothing to do, returns at once
    assert pos.current() == Fix(59.3303, 18.0590, 12.0, when)
    with pytest.raises(ValueError):
        FixedPosition(95.0, 18.0)


# --- SimulatedRoute --------------------------------------------------------------------


ROUTE = [(59.0, 18.0), (59.0, 18.2), (59.4, 18.2)]


def test_route_interpolates_and_stops_at_the_end():
    route = SimulatedRoute(ROUTE, steps_per_leg=2)
    assert isinstance(route, PositionSource)
    seen = [(route.current().lat, route.current().long)]
    for _ in range(5):
        fix = route.advance()
        seen.append((fix.lat, fix.long))
    assert seen == [
        (59.0, 18.0),
        (59.0, pytest.approx(18.1)),
        (59.0, 18.2),
        (pytest.approx(59.2), 18.2),
        (59.4, 18.2),
        (59.4, 18.2),  # stays at the last stop
    ]
    assert route.finished


def test_route_loops_and_loses_fix_on_demand():
    route = SimulatedRoute(ROUTE, loop=True)
    route.advance(2)
    assert (route.current().lat, route.current().long) == (59.0, 18.0)  # back at the start
    assert not route.finished
    route.fix_lost = True  # a tunnel
    assert route.current() is None
    route.fix_lost = False
    assert route.current() is not None


def test_route_altitude_interpolated_when_given():
    route = SimulatedRoute([(59.0, 18.0, 10.0), (59.0, 18.0, 20.0)], steps_per_leg=4)
    assert route.advance().alt == pytest.approx(12.5)


async def test_route_ticks_in_run_and_close_stops_it():
    route = SimulatedRoute(ROUTE, steps_per_leg=2, tick=0.01)
    await asyncio.wait_for(route.run(), 2.0)  # runs to the end of the route by itself
    assert route.finished and route.current().lat == 59.4

    looping = SimulatedRoute(ROUTE, loop=True, tick=0.01)
    task = asyncio.create_task(looping.run())
    await asyncio.sleep(0.05)
    await looping.close()
    await asyncio.wait_for(task, 1.0)
