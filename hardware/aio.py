"""Asyncio plumbing the adapters and the agent share: one thread for blocking calls, and a sleep
that an event cuts short. (It lives here, at the bottom of the layers, so that ``hardware``
and ``agent`` both can use it.)"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less when ``event`` is set meanwhile; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


Job = tuple["concurrent.futures.Future[Any] | asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


class Worker:
    """One long-lived thread that runs blocking calls one after the other, in order.

    A serial port's reads, a display's writes and the device cache's transactions each get one,
    so the event loop never blocks on them and they never run in parallel. The thread takes
    every call queued so far as one batch; ``after_batch`` then runs on it *before* any result
    of that batch is handed back. The device cache makes its commits durable there: one fsync
    for all the scans that queued up meanwhile, and no caller sees a decision before it. The
    results of a batch reach an event loop in one wake-up, not one per call.
    """

    def __init__(self, name: str, *, after_batch: Callable[[], None] | None = None) -> None:
        self.name = name
        self._after_batch = after_batch
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue a call from any thread; a concurrent Future holds its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put((future, fn, args))
        return future

    def schedule(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue a call from the running event loop without waiting for it; await the Future."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put((future, fn, args))
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.schedule(fn, *args)

    def _put(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"worker {self.name} is closed")
            if self._thread is None:  # daemon: a worker nobody closed cannot hold the interpreter at exit
                self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._thread.start()
            self._jobs.put(job)

    def close(self, *, wait: bool = True) -> None:
        """Finish what is queued, then end the thread; ``wait`` joins it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._jobs.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _serve(self) -> None:
        while True:
            batch = [self._jobs.get()]
            while not self._jobs.empty():
                batch.append(self._jobs.get_nowait())
            done: list[tuple[Any, Any, BaseException | None]] = []
            for job in batch:
                if job is None:
                    continue
                future, fn, args = job
                if future.cancelled() or (isinstance(future, concurrent.futures.Future)
                                          and not future.set_running_or_notify_cancel()):
                    continue  # e.g. a watchdog probe that timed out meanwhile
                try:
                    done.append((future, fn(*args), None))
                except BaseException as exc:  # handed to the caller, as an executor does
                    done.append((future, None, exc))
            if done and self._after_batch is not None:
                try:
                    self._after_batch()
                except BaseException as exc:  # nothing of this batch may pass as done
                    done = [(future, None, error or exc) for future, _, error in done]
            _hand_back(done)
            if batch[-1] is None:
                return


def _hand_back(done: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Settle concurrent Futures here, and each event loop's Futures in one call on that loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, BaseException | None]]] = {}
    for item in done:
        future = item[0]
        if isinstance(future, concurrent.futures.Future):
            _settle([item])
        else:
            by_loop.setdefault(future.get_loop(), []).append(item)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # that loop is closed: nobody waits for these any more
            pass


def _settle(items: list[tuple[Any, Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
