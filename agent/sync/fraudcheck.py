"""The back office's half of travel-speed fraud (BoB Validation API ``GET /fraudcheck``): the
velocity between the MTB's last sighting the server knows of (on any device) and this scan.

Asked as the scan is read, in parallel with the decision, and only when it costs nothing the
scan would wait for: online, with a token in hand, with room in the request budget (leaving half
of it to the rest), and the device's position known. The engine waits for the answer only when
it would accept a ticket, and never past ``budget_s`` (``[server] fraudcheck_budget_ms``, 150)
from the moment the scan was read; otherwise, and when the server does not answer in time, the
device decides with what it has. A server without the endpoint (404, 501) is not asked again
for an hour; a 403 (the server already answered this client about that sighting) is no answer.
Each scan's outcome is counted (:data:`OUTCOMES`, the agent's metrics): an operator sees how
often the back office's answer came in time to count.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import time
from typing import Any, Callable, Literal

import mtb as codec
from mtb.timeutil import format_extended

from ..engine import mtb_reference
from mtb.scan_context import Context
from .client import ServerClient
from .errors import Rejected, SyncError

log = logging.getLogger(__name__)
UNSUPPORTED_PAUSE_S = 3600.0
BUDGET_SHARE = 2  # fraud checks leave half of the request budget to the other channels
Outcome = Literal["answered", "unanswered", "unsupported", "not_asked"]
# answered: a velocity within the budget; unanswered: offline, refused, no velocity or too late;
# unsupported: the server has no fraud check (404, 501); not_asked: offline, no token, no
# position, no room in the request budget, paused after an unsupported, or no MTB reference.
OUTCOMES: tuple[Outcome, ...] = ("answered", "unanswered", "unsupported", "not_asked")


class Velocity:
    """One scan's question, answered on the event loop and waited for on the engine's thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline  # time.monotonic()
        self._answer: concurrent.futures.Future[float | None] = concurrent.futures.Future()

    def answer(self, kmh: float | None) -> None:
        if not self._answer.done():
            self._answer.set_result(kmh)

    def wait(self) -> float | None:
        """km/h, or None when no answer came by the deadline."""
        try:
            return self._answer.result(timeout=max(0.0, self.deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            return None


class FraudCheck:
    path = "/fraudcheck"

    def __init__(self, client: ServerClient, budget_s: float = 0.150,
                 counted: Callable[[Outcome], None] | None = None) -> None:
        self.client = client
        self.budget_s = budget_s
        self.counted = counted or (lambda outcome: None)
        self._paused_until = -math.inf
        self._pending: set[asyncio.Task[None]] = set()

    def ask(self, raw: bytes, ctx: Context) -> Velocity | None:
        """Start the question for one scan (on the event loop), or None when it is not asked."""
        started = time.monotonic()
        client = self.client
        if ctx.geo is None or started < self._paused_until or not (client.online and client.has_token) \
                or not client.budget.has_room(client.budget.requests // BUDGET_SHARE):
            self.counted("not_asked")
            return None
        try:
            reference = mtb_reference(codec.decode(raw))
        except codec.MtbFormatError:
            reference = None
        if reference is None:
            self.counted("not_asked")
            return None
        body = {"mtbReference": reference, "geo": {"lat": ctx.geo.lat, "long": ctx.geo.long},
                "time": format_extended(ctx.time)}
        velocity = Velocity(started + self.budget_s)
        task = asyncio.ensure_future(self._ask(body, velocity))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return velocity

    async def _ask(self, body: dict[str, Any], velocity: Velocity) -> None:
        left = velocity.deadline - time.monotonic()
        try:
            _, _, data = await asyncio.wait_for(
                # the engine's thread waits for this answer: the Date must not queue on it meanwhile
                self.client.call("GET", self.path, json_text=json.dumps(body), timeout_s=max(left, 0.001),
                                 observe_date=False),
                max(left, 0.001))
            kmh = data.get("velocity") if isinstance(data, dict) else None
            if isinstance(kmh, (int, float)) and not isinstance(kmh, bool) and math.isfinite(kmh) and kmh >= 0:
                velocity.answer(float(kmh))
                self.counted("answered")
                return
            log.warning("GET %s: no velocity in the answer %.200r", self.path, data)
        except Rejected as exc:
            if exc.status in (404, 501):
                log.warning("GET %s: the server has no fraud check (HTTP %d); not asking for an hour",
                            self.path, exc.status)
                self._paused_until = time.monotonic() + UNSUPPORTED_PAUSE_S
                self.counted("unsupported")
                velocity.answer(None)
                return
        except (SyncError, asyncio.TimeoutError):
            pass  # offline, refused or too slow: the device decides with what it has
        self.counted("unanswered")
        velocity.answer(None)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
