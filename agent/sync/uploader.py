"""The uploader: the outbox up to the server, in batches, at a bounded rate.

One request carries every event queued since the last one (up to ``batch_size``). An event
recorded after a quiet spell goes up at once; while scans keep coming, uploads are at least
``interval_s`` apart, so the request rate is bounded whatever the scan rate (10 scans a second
is still one upload every 5 s). After a failure the next try waits the longer of the interval
and the back-off.

An event leaves the outbox only when the server's answer names its ``localEventId``, or when
the server answers BoB's way, a 2xx with no body: the whole batch stored. A 4xx
that says the events are wrong (400, 409, 413, 422) parks the one refused event for a human
(``outbox list`` shows it), found by halving the batch; the good ones still go up.
"""
from __future__ import annotations

import logging

from mtb.timeutil import format_extended

from ..cache import OutboxEvent
from ..engine import Engine
from .channel import Channel
from .client import ServerClient
from .errors import Rejected
from .status import SyncStatus

log = logging.getLogger(__name__)

EVENT_TYPES = ("validation", "inspection")


class Uploader(Channel):
    name = "upload"

    def __init__(self, engine: Engine, client: ServerClient, *, batch_size: int = 200,
                 interval_s: float = 5.0) -> None:
        super().__init__(engine, client, interval_s=interval_s)
        self.batch_size = batch_size
        self.pending = True  # events may wait in the outbox from before the start
        self.parked = 0

    def retry_delay(self) -> float:
        return max(self.interval_s, self.backoff.next_delay())

    async def attempt(self, status: SyncStatus) -> int:
        """Upload until the outbox holds only parked events; returns events acknowledged."""
        total = 0
        try:
            for kind in EVENT_TYPES:
                while True:
                    batch = await self.engine.run(self._next_batch, kind)
                    if not batch:
                        break
                    acknowledged = await self._upload(kind, batch)
                    total += acknowledged
                    if acknowledged == 0 and not await self._progress_made(batch):
                        break
        except BaseException:
            self.pending = True
            raise
        self.pending = await self.engine.run(lambda: self.cache.outbox_count(parked=False) > 0)
        return total

    def _next_batch(self, kind: str) -> list[OutboxEvent]:
        return self.cache.outbox(limit=self.batch_size, event_type=kind)

    async def _progress_made(self, batch: list[OutboxEvent]) -> bool:
        """True when the batch's events are gone or parked (so the next batch differs)."""
        head = await self.engine.run(lambda: self.cache.outbox(limit=1, event_type=batch[0].event_type))
        return not head or head[0].seq != batch[0].seq

    async def _upload(self, kind: str, events: list[OutboxEvent]) -> int:
        try:
            _, _, data = await self.client.call("POST", f"/{kind}",
                                                json_text="[" + ",".join(e.body_json for e in events) + "]")
        except Rejected as exc:
            if not exc.about_the_events:
                raise
            if len(events) > 1:  # find the bad event(s) by halving; the good ones still go up
                middle = len(events) // 2
                return await self._upload(kind, events[:middle]) + await self._upload(kind, events[middle:])
            reason = str(exc)
            log.error("server refused event %s (%s): parked for an operator", events[0].local_event_id, reason)
            await self.engine.run(lambda: self.cache.note_failure([events[0].seq], reason, park=True))
            self.parked += 1
            return 0
        if data is None:  # BoB's answer: 200 and no body, the whole batch is stored (all or nothing)
            acknowledged = [e.seq for e in events]
        else:
            answered = {item.get("localEventId") for item in data if isinstance(item, dict)}
            acknowledged = [e.seq for e in events if e.local_event_id in answered]
        if acknowledged:
            await self.engine.run(self.cache.acknowledge, acknowledged, format_extended(self.client.clock.wall()))
        return len(acknowledged)
