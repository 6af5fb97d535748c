"""The shared plumbing: one Worker thread (serial reader, display, engine) and sleep_unless."""
from __future__ import annotations

import asyncio
import threading

import pytest

from hardware.aio import Worker, sleep_unless


async def test_a_worker_runs_calls_in_order_on_one_thread():
    worker = Worker("test")
    try:
        seen: list[tuple[int, str]] = []
        results = await asyncio.gather(*(worker.run(lambda i=i: seen.append((i, threading.current_thread().name))
                                                    or i * i) for i in range(20)))
        assert results == [i * i for i in range(20)]
        assert [i for i, _ in seen] == list(range(20)) and {name for _, name in seen} == {"test"}
    finally:
        worker.close()


async def test_after_batch_runs_before_any_result_of_the_batch_is_handed_back():
    log: list[str] = []
    gate = threading.Event()
    worker = Worker("batching", after_batch=lambda: log.append("durable"))
    try:
        first = worker.submit(gate.wait, 5)  # holds the thread while three more calls queue up
        queued = [worker.submit(lambda i=i: (log.append(f"job {i}"), len(log))[1]) for i in range(3)]
        gate.set()
        await asyncio.wrap_future(first)
        for future in queued:
            ran_at = await asyncio.wrap_future(future)
            assert "durable" in log[ran_at:]  # after this call ran and before its result came back
        assert log.count("durable") <= 2  # one per batch, not one per call
    finally:
        worker.close()


async def test_a_failing_call_or_after_batch_reaches_the_caller():
    worker = Worker("failing")
    with pytest.raises(ZeroDivisionError):
        await worker.run(lambda: 1 / 0)
    assert await worker.run(lambda: "still serving") == "still serving"
    worker.close()

    def broken() -> None:
        raise OSError("fsync failed")

    unsynced = Worker("unsynced", after_batch=broken)
    with pytest.raises(OSError, match="fsync failed"):
        await unsynced.run(lambda: "decided")  # no result passes as done when after_batch failed
    unsynced.close()


def test_close_finishes_what_is_queued_then_refuses():
    worker = Worker("closing")
    done = [worker.submit(lambda i=i: i) for i in range(5)]
    worker.close()
    assert [f.result(timeout=5) for f in done] == list(range(5))
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(lambda: None)


async def test_sleep_unless_ends_early_when_the_event_is_set():
    event = asyncio.Event()
    assert await sleep_unless(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await sleep_unless(event, 30) is True


async def test_a_batch_reaches_the_event_loop_in_one_wake_up(monkeypatch):
    loop = asyncio.get_running_loop()
    wake_ups: list[int] = []
    real = loop.call_soon_threadsafe

    def counting(callback, *args):
        wake_ups.append(len(args[0]) if args else 0)
        return real(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    gate = threading.Event()
    worker = Worker("batched")
    try:
        first = worker.schedule(gate.wait, 5)
        rest = [worker.schedule(lambda i=i: i) for i in range(10)]
        gate.set()
        assert await first is True and await asyncio.gather(*rest) == list(range(10))
    finally:
        worker.close()
    assert sum(wake_ups) == 11 and len(wake_ups) <= 2  # the held call, then the ten queued behind it
