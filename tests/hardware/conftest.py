"""Real serial plumbing for the hardware tests: pseudo-terminal pairs, no mocks."""

from __future__ import annotations

import asyncio
import os
import tty
from collections.abc import AsyncIterator, Iterator

import pytest


class Pty:
    """A pty pair: the code under test opens ``name``; the test plays the device on ``master``."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo/line editing before pyserial configures the port
        self.name = os.ttyname(self.slave)
        self.closed = False

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, marker: bytes, timeout: float = 2.0) -> bytes:
        """Read from the master side until ``marker`` has been seen (or fail on timeout)."""
        import select
        import time

        buf = b""
        end = time.monotonic() + timeout
        while marker not in buf:
            left = end - time.monotonic()
            assert left > 0, f"timed out waiting for {marker!r}; got {buf!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                buf += os.read(self.master, 4096)
        return buf

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self.slave)


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


class Collector:
    """Runs ``reader.scans()`` in a task and queues what it yields."""

    def __init__(self, reader) -> None:
        self.reader = reader
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for scan in self.reader.scans():
            await self.queue.put(scan)

    async def next(self, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def nothing_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"unexpected scan {self.queue.get_nowait()!r}"

    async def stop(self) -> None:
        await self.reader.close()
        await asyncio.wait_for(self.task, 2.0)


@pytest.fixture
async def collect() -> AsyncIterator:
    made: list[Collector] = []

    def start(reader) -> Collector:
        c = Collector(reader)
        made.append(c)
        return c

    yield start
    for c in made:
        if not c.task.done():
            await c.reader.close()
            c.task.cancel()
            try:
                await c.task
            except BaseException:
                pass
