"""Scan readers: where raw scan bytes come from.

A reader knows nothing of tickets. It hands over one ``bytes`` object per scan and the agent
decodes it (every byte is untrusted; the agent, not the reader, decides what is a ticket).
What it hands over is the scanned MTB itself: an adapter for a card reader (ISO 7816 APDUs)
strips the status word ``90 00`` that ends a card's response, as it strips a line terminator,
and turns a response it did not get ("6A 82" and the like) into no scan at all.

Two framings are understood on a serial line:

``line``
    One scan per line, as the barcode/NFC module sends it (base64url text). A line ends at
    LF, CR or CRLF (scanners differ); the terminator is stripped, empty lines are skipped,
    the rest is handed over byte for byte. A line longer than ``max_len`` is dropped whole
    (with a log line) and reading goes on at the next terminator. A partial line followed by
    ``frame_timeout`` seconds of silence is dropped too, so it cannot glue onto the next scan.

``length-prefixed``
    A 2-byte big-endian length, then that many bytes of payload (binary modules). There is
    no sync marker, so resync is heuristic: a length of 0 or above ``max_len`` is garbage and
    the stream slides forward one byte; a frame left incomplete for ``frame_timeout``
    seconds is dropped so a truncated frame cannot swallow the next frame's header.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Literal, Protocol, cast, runtime_checkable

import serial

from .aio import Worker, sleep_unless

log = logging.getLogger(__name__)

Framing = Literal["line", "length-prefixed"]
DEFAULT_MAX_LEN = 8192


@runtime_checkable
class Reader(Protocol):
    """A source of scans: the agent iterates ``scans()`` and calls ``close()`` on shutdown.

    ``connected`` is set while the reader can take scans (its port is open); the agent waits
    for it, briefly, before it tells systemd it is ready.
    """

    connected: asyncio.Event

    def scans(self) -> AsyncIterator[bytes]:
        """Yield one ``bytes`` per scan until closed."""
        ...

    async def close(self) -> None:
        """Stop reading and release the device; ``scans()`` then ends."""
        ...


# --- framers: pure, synchronous, so they can be tested byte by byte ---------------------


class LineFramer:
    """Split a byte stream into lines (LF, CR or CRLF), dropping lines over ``max_len``."""

    def __init__(self, max_len: int = DEFAULT_MAX_LEN) -> None:
        self.max_len = max_len
        self.dropped = 0
        self._buf = bytearray()
        self._discarding = False  # inside an oversize line: skip to the next terminator

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._buf += data
        while True:
            cut = _first_terminator(self._buf)
            if cut < 0:
                break
            line = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > self.max_len:
                self._drop(f"line of {len(line)} bytes exceeds cap {self.max_len}")
                continue
            if line:
                out.append(line)
        if len(self._buf) > self.max_len:
            # No terminator in sight: drop now rather than buffer without bound.
            if not self._discarding:
                self._drop(f"line exceeds cap {self.max_len} bytes without a terminator")
            self._discarding = True
            self._buf.clear()
        return out

    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial line (after a reconnect, or when the line went quiet mid-line)."""
        if self._buf:
            self._drop(f"incomplete line ({len(self._buf)} bytes) after the line went quiet")
        self._buf.clear()
        self._discarding = False

    def _drop(self, why: str) -> None:
        self.dropped += 1
        log.warning("reader: dropped input: %s", why)


def _first_terminator(buf: bytearray) -> int:
    cr, lf = buf.find(b"\r"), buf.find(b"\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


class LengthPrefixedFramer:
    """Split a byte stream into frames of ``len(2 bytes, big-endian) || payload``."""

    def __init__(self, max_len: int = DEFAULT_MAX_LEN) -> None:
        if not 0 < max_len <= 0xFFFF:
            raise ValueError("max_len must be in 1..65535 for a 2-byte length")
        self.max_len = max_len
        self.dropped = 0  # drop events: garbage runs skipped while resyncing, stalled frames
        self.skipped_bytes = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._buf += data
        skipped = 0
        while len(self._buf) >= 2:
            n = int.from_bytes(self._buf[:2], "big")
            if n == 0 or n > self.max_len:
                del self._buf[:1]  # garbage length: slide one byte and look again
                skipped += 1
                continue
            if len(self._buf) < 2 + n:
                break
            out.append(bytes(self._buf[2 : 2 + n]))
            del self._buf[: 2 + n]
        if skipped:
            self.dropped += 1
            self.skipped_bytes += skipped
            log.warning("reader: skipped %d garbage byte(s) resyncing length-prefixed frames", skipped)
        return out

    def pending(self) -> int:
        return len(self._buf)

    def reset(self) -> None:
        if self._buf:
            self.dropped += 1
            self.skipped_bytes += len(self._buf)
            log.warning("reader: dropped incomplete frame (%d bytes buffered)", len(self._buf))
        self._buf.clear()


def make_framer(framing: Framing, max_len: int = DEFAULT_MAX_LEN) -> LineFramer | LengthPrefixedFramer:
    if framing == "line":
        return LineFramer(max_len)
    if framing == "length-prefixed":
        return LengthPrefixedFramer(max_len)
    raise ValueError(f"unknown framing {framing!r} (expected 'line' or 'length-prefixed')")


# --- serial reader ---------------------------------------------------------------------


class SerialReader:
    """Scans from a serial device (or any pyserial URL such as ``loop://``).

    Blocking pyserial calls run on the reader's own thread (a ``Worker``) with a short read timeout,
    so the event loop never blocks and ``close()`` takes effect within ``read_timeout``.
    When the device fails (unplugged, other end closed) the port is closed and reopened with
    exponential back-off until it comes back; each transition is logged. A closed reader
    stays closed (make a new one).
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        framing: Framing = "line",
        max_len: int = DEFAULT_MAX_LEN,
        read_timeout: float = 0.1,
        frame_timeout: float = 0.5,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.framing: Framing = framing
        self.read_timeout = read_timeout
        self.frame_timeout = frame_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.framer = make_framer(framing, max_len)
        self.connects = 0  # successful opens; > 1 means we reconnected
        self.connected = asyncio.Event()  # set while the port is open
        self.port: serial.Serial | None = None
        self._closed = False
        self._closing = asyncio.Event()  # wakes a back-off pause on close()
        self._worker = Worker(f"serial-{url}")
        self._inflight: concurrent.futures.Future[bytes] | None = None
        self._open_failing = False

    @property
    def dropped(self) -> int:
        """Oversize lines, garbage bytes and stalled frames dropped so far."""
        return self.framer.dropped

    async def scans(self) -> AsyncIterator[bytes]:
        backoff = self.backoff_initial
        while not self._closed:
            port = await self._open()
            if port is None:
                await sleep_unless(self._closing, backoff)  # close() cuts the pause short
                backoff = min(backoff * 2, self.backoff_max)
                continue
            backoff = self.backoff_initial
            try:
                async for frame in self._frames(port):
                    yield frame
            except (serial.SerialException, OSError) as e:
                if not self._closed:
                    log.warning("reader %s: device lost (%s); reconnecting", self.url, e)
            finally:
                self._release(port)

    async def _frames(self, port: serial.Serial) -> AsyncIterator[bytes]:
        last_data = time.monotonic()
        while not self._closed:
            data = await self._read(port)
            now = time.monotonic()
            if data:
                last_data = now
                for frame in self.framer.feed(data):
                    yield frame
            elif self.framer.pending() and now - last_data > self.frame_timeout:
                self.framer.reset()

    async def _open(self) -> serial.Serial | None:
        try:
            port = await self._worker.run(self._open_blocking)
        except (serial.SerialException, OSError, ValueError) as e:
            # Warn once per outage, then stay quiet while backing off.
            level = logging.DEBUG if self._open_failing else logging.WARNING
            log.log(level, "reader %s: cannot open (%s); retrying with back-off", self.url, e)
            self._open_failing = True
            return None
        self._open_failing = False
        self.connects += 1
        self.port = port
        self.framer.reset()
        self.connected.set()
        log.info("reader %s: connected%s", self.url, " again" if self.connects > 1 else "")
        return port

    def _open_blocking(self) -> serial.Serial:
        # Typed as Serial: URL handlers (loop://, socket://, ...) duck-type its interface.
        port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.read_timeout)
        return cast(serial.Serial, port)

    async def _read(self, port: serial.Serial) -> bytes:
        self._inflight = self._worker.submit(self._read_blocking, port)
        return await asyncio.wrap_future(self._inflight)

    @staticmethod
    def _read_blocking(port: serial.Serial) -> bytes:
        data = port.read(1)  # waits up to read_timeout
        if data:
            waiting = port.in_waiting
            if waiting:
                data += port.read(waiting)
        return data

    def _release(self, port: serial.Serial) -> None:
        """Close the port, but only once no worker thread is still reading it."""
        self.connected.clear()
        if self.port is port:
            self.port = None
        inflight = self._inflight
        if inflight is not None and not inflight.done():
            inflight.add_done_callback(lambda _f: _quiet_close(port))
        else:
            _quiet_close(port)

    async def close(self) -> None:
        self._closed = True
        self._closing.set()
        port = self.port
        if port is not None:
            try:
                port.cancel_read()  # wake a blocked read at once where pyserial supports it
            except (AttributeError, NotImplementedError, OSError, serial.SerialException):
                pass
            self._release(port)
        self._worker.close(wait=False)


def _quiet_close(port: serial.Serial) -> None:
    try:
        port.close()
    except (serial.SerialException, OSError):
        pass


# --- simulated reader ------------------------------------------------------------------


class SimulatedReader:
    """Scans from a script, a file of MTBs, or ``await reader.push(...)`` (demo and tests).

    With ``finish=True`` ``scans()`` ends once the scripted items are used up; otherwise it
    waits for pushes until ``close()``.
    """

    _END = object()

    def __init__(self, items: Iterable[bytes | str] = (), *, finish: bool = False, delay: float = 0.0) -> None:
        self.delay = delay
        self.connected = asyncio.Event()
        self.connected.set()  # nothing to open
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        for item in items:
            self._queue.put_nowait(_as_bytes(item))
        if finish:
            self._queue.put_nowait(self._END)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: object) -> SimulatedReader:
        """One base64url MTB per line; blank lines and ``#`` comments are skipped."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        items = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        return cls(items, **kwargs)  # type: ignore[arg-type]

    async def push(self, scan: bytes | str) -> None:
        await self._queue.put(_as_bytes(scan))

    async def scans(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is self._END:
                self._queue.put_nowait(self._END)  # later iterations end too
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            yield item  # type: ignore[misc]

    async def close(self) -> None:
        self._queue.put_nowait(self._END)


def _as_bytes(item: bytes | str) -> bytes:
    return item.encode("ascii") if isinstance(item, str) else bytes(item)
