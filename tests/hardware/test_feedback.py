"""Feedback adapters: the serial line protocol read back from a pty, console, simulated."""

from __future__ import annotations

import asyncio
import io
import os

import pytest

from hardware.feedback import (
    ConsoleFeedback,
    Feedback,
    SerialFeedback,
    Shown,
    SimulatedFeedback,
    encode_message,
)

from .conftest import Pty


def test_encode_message_protocol():
    assert encode_message("green", "Giltig biljett") == b"G|Giltig biljett\n"
    assert encode_message("red", "Ogiltig", ["Sp\u00e4rrad"]) == "R|Ogiltig|Sp\u00e4rrad\n".encode()
    # Separators and control characters inside a field cannot break the framing.
    assert encode_message("amber", "a|b\r\nc", ["\x1b[2Jx"]) == b"A|a/b  c| [2Jx\n"
    assert encode_message("green", "x" * 300, max_field=10) == b"G|xxxxxxxxxx\n"
    with pytest.raises(ValueError):
        encode_message("blue", "no such LED")


async def test_serial_feedback_writes_protocol_lines_to_a_pty(pty: Pty):
    fb = SerialFeedback(pty.name, baudrate=115200)
    assert isinstance(fb, Feedback)
    await fb.show("green", "Giltig biljett")
    await fb.show("red", "Ogiltig", ["Utg\u00e5ngen", "Zon B"])
    await fb.show("amber", "Kontrollera")
    got = await asyncio.to_thread(pty.read_until, b"Kontrollera\n")
    assert got.decode() == "G|Giltig biljett\nR|Ogiltig|Utg\u00e5ngen|Zon B\nA|Kontrollera\n"
    assert fb.sent == 3 and fb.failures == 0
    await fb.close()


async def test_serial_feedback_survives_display_unplug(tmp_path):
    link = tmp_path / "ttyDisplay"
    first = Pty()
    os.symlink(first.name, link)
    fb = SerialFeedback(str(link))
    try:
        await fb.show("green", "one")
        assert await asyncio.to_thread(first.read_until, b"one\n") == b"G|one\n"

        first.close()  # display unplugged...
        link.unlink()
        second = Pty()  # ...and plugged back in, at the same path
        os.symlink(second.name, link)
        try:
            await asyncio.wait_for(fb.show("red", "lost"), 3.0)  # fails on the dead port, no raise
            assert fb.failures == 1
            await asyncio.wait_for(fb.show("green", "two"), 3.0)  # reopens the path
            assert await asyncio.to_thread(second.read_until, b"two\n") == b"G|two\n"
        finally:
            second.close()
    finally:
        first.close()
        await fb.close()


async def test_serial_feedback_unavailable_port_is_counted_not_raised(tmp_path):
    fb = SerialFeedback(str(tmp_path / "no-such-tty"))
    await fb.show("green", "nobody listens")
    assert fb.failures == 1 and fb.sent == 0
    await fb.close()


async def test_console_feedback_plain_when_not_a_tty():
    out = io.StringIO()
    fb = ConsoleFeedback(out)
    assert isinstance(fb, Feedback) and not fb.colour
    await fb.show("red", "Ogiltig biljett", ["Sp\u00e4rrad", "evil\x1b[2J"])
    assert out.getvalue() == "[RED] Ogiltig biljett\n    Sp\u00e4rrad\n    evil [2J\n"


async def test_console_feedback_colours_on_a_real_tty(pty: Pty, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    # O_NOCTTY: never let the test runner adopt the pty as its controlling terminal.
    with os.fdopen(os.open(pty.name, os.O_WRONLY | os.O_NOCTTY), "w", encoding="utf-8") as term:
        fb = ConsoleFeedback(term)
        assert fb.colour
        await fb.show("green", "Giltig")
    got = await asyncio.to_thread(pty.read_until, b"Giltig")
    assert b"\x1b[" in got and b"[GREEN]" in got


async def test_simulated_feedback_records_and_waits():
    fb = SimulatedFeedback()
    assert isinstance(fb, Feedback) and fb.last is None

    async def later():
        await asyncio.sleep(0.05)
        await fb.show("green", "Giltig")
        await fb.show("amber", "Inspektion", ["Vuxen", "Zon A"])

    task = asyncio.create_task(later())
    shown = await fb.wait_for(2, timeout=2.0)
    await task
    assert shown == [Shown("green", "Giltig"), Shown("amber", "Inspektion", ["Vuxen", "Zon A"])]
    assert fb.last == Shown("amber", "Inspektion", ["Vuxen", "Zon A"])
    with pytest.raises(ValueError):
        await fb.show("purple", "x")
    with pytest.raises(asyncio.TimeoutError):
        await fb.wait_for(3, timeout=0.05)
