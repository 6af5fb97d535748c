"""Feedback: what the passenger or inspector sees (and hears) after a scan.

The agent turns a decision into a colour (``green`` valid, ``red`` refused, ``amber``
attention: degraded, inspection notes) and text; these adapters only put it on a device.
Text may come from ticket fields, so control characters are neutralised before it reaches a
terminal or a display (no escape-sequence injection).

Serial line protocol (``SerialFeedback``), one message per line, UTF-8::

    <C>|<text>[|<line>]...\\n

``C`` is ``G`` (green), ``R`` (red) or ``A`` (amber); ``text`` is the headline; each further
``|`` field is one extra display line (inspector details). Inside a field ``|`` is replaced
by ``/``, and CR, LF and other control characters by a space; each field is cut to
``max_field`` characters. Example: ``G|Giltig biljett|Vuxen|Zon A\\n``. The device answers
nothing; a failed write is logged and the port is reopened on the next message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import unicodedata
from dataclasses import dataclass, field
from typing import Literal, Protocol, TextIO, runtime_checkable

import serial

from .aio import Worker

log = logging.getLogger(__name__)

Colour = Literal["green", "red", "amber"]
COLOUR_CODES: dict[str, str] = {"green": "G", "red": "R", "amber": "A"}


@runtime_checkable
class Feedback(Protocol):
    """Shows a colour and text; ``lines`` are extra detail lines (inspection mode)."""

    async def show(self, colour: str, text: str, lines: list[str] | None = None) -> None: ...

    async def close(self) -> None: ...


def check_colour(colour: str) -> str:
    """Fail loudly on a colour the devices do not have: that is a bug in the caller."""
    if colour not in COLOUR_CODES:
        raise ValueError(f"unknown colour {colour!r}; expected one of {sorted(COLOUR_CODES)}")
    return colour


def clean(text: str, *, bar: bool = False) -> str:
    """Replace control characters (ANSI escapes, CR, LF, ...) with spaces; optionally ``|``."""
    out = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(text))
    return out.replace("|", "/") if bar else out


class ConsoleFeedback:
    """A clear line on a terminal: ``[GREEN] text``, coloured only when writing to a tty
    (and ``NO_COLOR`` is unset), so logs and pipes stay plain."""

    _ANSI = {"green": "\x1b[1;97;42m", "red": "\x1b[1;97;41m", "amber": "\x1b[1;30;43m"}
    _RESET = "\x1b[0m"

    def __init__(self, stream: TextIO | None = None, *, colour: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if colour is None:
            colour = _isatty(self.stream) and "NO_COLOR" not in os.environ
        self.colour = colour

    def format(self, colour: str, text: str, lines: list[str] | None = None) -> str:
        label = f"[{check_colour(colour).upper()}]"
        if self.colour:
            label = f"{self._ANSI[colour]} {label} {self._RESET}"
        out = [f"{label} {clean(text)}"]
        out += [f"    {clean(line)}" for line in lines or ()]
        return "\n".join(out) + "\n"

    async def show(self, colour: str, text: str, lines: list[str] | None = None) -> None:
        self.stream.write(self.format(colour, text, lines))
        self.stream.flush()

    async def close(self) -> None:
        return None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def encode_message(colour: str, text: str, lines: list[str] | None = None, *, max_field: int = 120) -> bytes:
    """One protocol line (see the module docstring)."""
    fields = [COLOUR_CODES[check_colour(colour)], text, *(lines or ())]
    parts = [fields[0]] + [clean(f, bar=True)[:max_field] for f in fields[1:]]
    return ("|".join(parts) + "\n").encode("utf-8")


class SerialFeedback:
    """An LED/display module on a serial line (pyserial URL), speaking the line protocol.

    Writes run in a private thread with a write timeout, so a stuck display can neither
    block the event loop nor the next scan for long. A feedback device failing must not stop
    validation: errors are logged and counted in ``failures``, never raised.
    """

    def __init__(
        self, url: str, *, baudrate: int = 9600, write_timeout: float = 1.0, max_field: int = 120
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.write_timeout = write_timeout
        self.max_field = max_field
        self.failures = 0
        self.sent = 0
        self._port: serial.SerialBase | None = None
        self._lock = asyncio.Lock()
        self._worker = Worker(f"feedback-{url}")

    async def show(self, colour: str, text: str, lines: list[str] | None = None) -> None:
        message = encode_message(colour, text, lines, max_field=self.max_field)
        async with self._lock:
            try:
                await self._worker.run(self._write, message)
                self.sent += 1
            except (serial.SerialException, OSError) as e:
                self.failures += 1
                log.warning("feedback %s: write failed (%s); will reopen on the next message", self.url, e)
                await self._worker.run(self._drop_port)

    def _write(self, message: bytes) -> None:
        if self._port is None:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0, write_timeout=self.write_timeout
            )
        # No flush(): tcdrain has no timeout, and a display stalling flow control would hang
        # this thread for good. write_timeout already bounds handing the bytes to the driver.
        self._port.write(message)

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    async def close(self) -> None:
        async with self._lock:
            await self._worker.run(self._drop_port)
        self._worker.close(wait=False)


@dataclass(frozen=True)
class Shown:
    colour: str
    text: str
    lines: list[str] = field(default_factory=list)


class SimulatedFeedback:
    """Records everything shown, for tests and the simulator's assertions."""

    def __init__(self) -> None:
        self.shown: list[Shown] = []
        self._changed = asyncio.Condition()

    @property
    def last(self) -> Shown | None:
        return self.shown[-1] if self.shown else None

    async def show(self, colour: str, text: str, lines: list[str] | None = None) -> None:
        async with self._changed:
            self.shown.append(Shown(check_colour(colour), text, list(lines or ())))
            self._changed.notify_all()

    async def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Shown]:
        """Wait until at least ``count`` messages have been shown; return them all."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.shown) >= count)

        await asyncio.wait_for(enough(), timeout)
        return list(self.shown)

    def clear(self) -> None:
        self.shown.clear()

    async def close(self) -> None:
        return None
