"""Readers over real serial ports (pty pairs and pyserial's loop://) and the pure framers."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from hardware.readers import (
    LengthPrefixedFramer,
    LineFramer,
    Reader,
    SerialReader,
    SimulatedReader,
)

from .conftest import Pty

MTB1 = b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w"
MTB2 = b"ZmFrZS1tdGItdHdv_-"


def lp(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


def fast(url: str, **kw) -> SerialReader:
    kw.setdefault("backoff_initial", 0.02)
    kw.setdefault("backoff_max", 0.1)
    kw.setdefault("read_timeout", 0.05)
    return SerialReader(url, **kw)


async def connected(reader: SerialReader, timeout: float = 2.0) -> None:
    await asyncio.wait_for(reader.connected.wait(), timeout)


# --- pure framers ----------------------------------------------------------------------


def test_line_framer_terminators_and_split_feeds():
    f = LineFramer(max_len=100)
    assert f.feed(b"abc\r\ndef\nghi\r") == [b"abc", b"def", b"ghi"]
    assert f.feed(b"jk") == []
    assert f.feed(b"l\r\n\r\n\n") == [b"jkl"]  # empty lines skipped
    assert f.dropped == 0


def test_line_framer_drops_oversize_lines_and_keeps_going():
    f = LineFramer(max_len=8)
    assert f.feed(b"x" * 9 + b"\nok\n") == [b"ok"]
    assert f.dropped == 1
    # Oversize without a terminator yet: dropped early, tail up to the next newline skipped.
    assert f.feed(b"y" * 20) == []
    assert f.pending() == 0
    assert f.feed(b"yyyy\nafter\n") == [b"after"]
    assert f.dropped == 2


def test_length_prefixed_framer_frames_split_and_binary():
    f = LengthPrefixedFramer(max_len=100)
    payload = b"\x00\n\r\xff" * 5
    data = lp(payload) + lp(b"two")
    assert f.feed(data[:1]) == []
    assert f.feed(data[1:7]) == []
    assert f.feed(data[7:]) == [payload, b"two"]


def test_length_prefixed_framer_resyncs_on_garbage():
    f = LengthPrefixedFramer(max_len=100)
    # 0xFFFF and 0x0000 are impossible lengths; the framer slides past them.
    assert f.feed(b"\xff\xff\xff\x00\x00" + lp(b"good")) == [b"good"]
    assert f.dropped == 1 and f.skipped_bytes == 5  # ff ff ff 00 00 before 00 04
    f.feed(lp(b"partial")[:5])
    f.reset()  # what the reader does when a frame stalls
    assert f.feed(lp(b"next")) == [b"next"]
    assert f.dropped == 2


def test_length_prefixed_cap_must_fit_two_bytes():
    with pytest.raises(ValueError):
        LengthPrefixedFramer(max_len=70000)


# --- SerialReader over a pty -----------------------------------------------------------


async def test_serial_reader_is_a_reader():
    assert isinstance(SerialReader("loop://"), Reader)
    assert isinstance(SimulatedReader(), Reader)


async def test_line_framing_over_pty(pty: Pty, collect):
    reader = fast(pty.name, framing="line", baudrate=115200)
    c = collect(reader)
    await connected(reader)
    pty.write(MTB1 + b"\r\n")
    pty.write(MTB2[:5])
    await asyncio.sleep(0.1)  # the rest arrives in a later read
    pty.write(MTB2[5:] + b"\n")
    assert await c.next() == MTB1
    assert await c.next() == MTB2
    await c.stop()


async def test_oversize_and_garbage_lines_dropped_reading_continues(pty: Pty, collect):
    reader = fast(pty.name, framing="line", max_len=200)
    c = collect(reader)
    await connected(reader)
    pty.write(b"A" * 1000 + b"\n")  # over the cap
    pty.write(b"\x00\x01\xfe binary junk\r\n")  # not ours to judge: handed over as-is
    pty.write(MTB1 + b"\n")
    assert await c.next() == b"\x00\x01\xfe binary junk"
    assert await c.next() == MTB1
    assert reader.dropped == 1
    await c.stop()


async def test_length_prefixed_over_pty_with_garbage_and_stall(pty: Pty, collect):
    reader = fast(pty.name, framing="length-prefixed", max_len=1024, frame_timeout=0.2)
    c = collect(reader)
    await connected(reader)
    payload = bytes(range(256))  # contains \n, \r, \x00
    pty.write(lp(payload))
    assert await c.next() == payload
    pty.write(b"\xff\xff\xfe" + lp(b"after-garbage"))
    assert await c.next() == b"after-garbage"
    pty.write(lp(b"truncated frame")[:6])  # the module dies mid-frame...
    await asyncio.sleep(0.5)  # ...longer than frame_timeout
    pty.write(lp(b"fresh"))
    assert await c.next() == b"fresh"
    assert reader.dropped == 2  # one garbage run, one stalled frame
    await c.stop()


async def test_reader_does_not_block_event_loop(pty: Pty, collect):
    reader = fast(pty.name, read_timeout=0.5)
    c = collect(reader)
    await connected(reader)
    ticks = 0
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks >= 15  # a blocking read would have stalled the loop for 0.5 s per read
    await c.stop()


async def test_close_ends_scans_promptly(pty: Pty):
    reader = SerialReader(pty.name, read_timeout=1.0)
    scans = []

    async def run():
        async for s in reader.scans():
            scans.append(s)

    task = asyncio.create_task(run())
    await connected(reader)
    t0 = time.monotonic()
    await reader.close()
    await asyncio.wait_for(task, 2.0)
    assert time.monotonic() - t0 < 0.9  # cancel_read woke the blocked read
    assert scans == []
    assert not reader.connected.is_set()


# --- unplug / replug -------------------------------------------------------------------


async def test_survives_other_end_closing_and_device_path_swapping(tmp_path, collect):
    link = tmp_path / "ttyScanner"
    first = Pty()
    os.symlink(first.name, link)
    reader = fast(str(link), framing="line")
    c = collect(reader)
    try:
        await connected(reader)
        first.write(b"before\n")
        assert await c.next() == b"before"

        # Unplug: the device end goes away and the path disappears.
        first.close()
        link.unlink()
        await asyncio.wait_for(_until(lambda: not reader.connected.is_set()), 2.0)
        await asyncio.sleep(0.3)  # several failed re-opens with back-off
        assert not reader.connected.is_set()
        assert reader.connects == 1

        # Replug: a new device appears at the same path.
        second = Pty()
        os.symlink(second.name, link)
        try:
            await connected(reader, timeout=3.0)
            assert reader.connects == 2
            second.write(b"after\n")
            assert await c.next() == b"after"
        finally:
            await c.stop()
            second.close()
    finally:
        first.close()


async def test_device_absent_at_start_then_appears(tmp_path, collect):
    link = tmp_path / "ttyLate"
    reader = fast(str(link), framing="length-prefixed")
    c = collect(reader)
    await asyncio.sleep(0.2)
    assert not reader.connected.is_set()
    p = Pty()
    try:
        os.symlink(p.name, link)
        await connected(reader, timeout=3.0)
        p.write(lp(b"late"))
        assert await c.next() == b"late"
        await c.stop()
    finally:
        p.close()


async def _until(cond) -> None:
    while not cond():
        await asyncio.sleep(0.01)


# --- loop:// ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framing", "wire", "expected"),
    [
        ("line", MTB1 + b"\n" + MTB2 + b"\r\n", [MTB1, MTB2]),
        ("length-prefixed", lp(b"\x01\x02\n") + lp(MTB2), [b"\x01\x02\n", MTB2]),
    ],
)
async def test_loop_url_both_framings(framing, wire, expected, collect):
    reader = fast("loop://", framing=framing)
    c = collect(reader)
    await connected(reader)
    assert reader.port is not None
    reader.port.write(wire)  # loop:// echoes what is written back to the reader
    assert [await c.next(), await c.next()] == expected
    await c.stop()


# --- SimulatedReader -------------------------------------------------------------------


async def test_simulated_reader_script_finishes():
    reader = SimulatedReader([MTB1, "text-scan"], finish=True)
    got = [s async for s in reader.scans()]
    assert got == [MTB1, b"text-scan"]


async def test_simulated_reader_push_and_close(collect):
    reader = SimulatedReader()
    c = collect(reader)
    await reader.push(MTB2)
    assert await c.next() == MTB2
    await c.stop()
    assert c.task.done()


async def test_simulated_reader_from_file(tmp_path):
    f = tmp_path / "mtbs.txt"
    f.write_text(f"# two tickets\n{MTB1.decode()}\n\n  {MTB2.decode()}  \n")
    reader = SimulatedReader.from_file(f, finish=True)
    assert [s async for s in reader.scans()] == [MTB1, MTB2]


async def test_partial_line_dropped_after_silence(pty: Pty, collect):
    reader = fast(pty.name, framing="line", frame_timeout=0.15)
    c = collect(reader)
    await connected(reader)
    pty.write(b"half-a-sca")  # scanner glitch: no terminator, then silence
    await asyncio.sleep(0.4)
    pty.write(MTB2 + b"\n")
    assert await c.next() == MTB2  # not b"half-a-sca" + MTB2
    assert reader.dropped == 1
    await c.stop()


async def test_close_during_backoff_is_prompt(tmp_path):
    reader = SerialReader(str(tmp_path / "absent"), backoff_initial=5.0)
    task = asyncio.create_task(_drain(reader))
    await asyncio.sleep(0.1)  # now in a 5 s back-off pause
    await reader.close()
    await asyncio.wait_for(task, 1.0)


async def _drain(reader) -> None:
    async for _ in reader.scans():
        pass
