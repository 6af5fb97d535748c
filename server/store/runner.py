"""Store calls off the event loop: ``await runner(store.get_ticket, tid)``.

As many threads as the database allows calls at once (SQLite: reads side by side, each thread
on a read-only connection of its own, writes one at a time; PostgreSQL: its pool size), so the
event loop never waits on a query.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class StoreRunner:
    def __init__(self, store: Any):
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=store.db.concurrency, thread_name_prefix="store")

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.store.close()
