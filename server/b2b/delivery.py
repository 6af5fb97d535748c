"""The webhook sender and the server's background jobs (roll-over, deliveries).

:func:`deliver_due` sends every delivery due at ``now`` (the heads of their per-employee queues,
see :meth:`B2BStore.claim_deliveries`), at most ``webhook_concurrency`` at once, and records
each round's attempts. ``now`` drives the schedule (so tests and ``b2b deliver --at`` can move
time); the signature's ``t`` is always the wall clock, since that is what a receiver checks it
against.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import aiohttp

from . import addresses, webhooks
from .records import Attempt, Delivery
from .service import LEASE, B2B, render_documents, rollover, wall_clock

log = logging.getLogger("server.b2b.webhooks")
USER_AGENT = "jobticket-b2b-webhooks/1"


async def _send(b2b: B2B, session: aiohttp.ClientSession, delivery: Delivery, now: datetime) -> Attempt:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               webhooks.HEADER: webhooks.signature(delivery.secret, delivery.body, int(time.time()))}
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        timeout = aiohttp.ClientTimeout(total=b2b.config.webhook_timeout_seconds)
        async with session.post(delivery.url, data=delivery.body, headers=headers, timeout=timeout,
                                allow_redirects=False) as response:
            status = response.status
            await response.content.read(64 * 1024)
            if not webhooks.success(status):
                error = f"HTTP {status}"
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
    duration_ms = int((time.monotonic() - started) * 1000)
    next_at = None if webhooks.success(status) else webhooks.after_failure(delivery.attempts + 1,
                                                                           delivery.created_at, now)
    attempt = Attempt(delivery, now, status, error, duration_ms, next_at)
    if not attempt.ok:
        log.warning("webhook %s to %s failed (%s); %s", delivery.event_id, delivery.url, error,
                    f"next try {next_at.isoformat()}" if next_at else "given up")
    return attempt


def webhook_session(b2b: B2B) -> aiohttp.ClientSession:
    """The sender's HTTP client: it connects only where the address policy allows
    (:mod:`.addresses`), takes no proxy from the environment and follows no redirect."""
    allowed = addresses.networks(b2b.config.webhook_allowed_networks)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(socket_factory=addresses.socket_factory(allowed)))


async def deliver_due(b2b: B2B, session: aiohttp.ClientSession, now: datetime | None = None,
                      *, max_rounds: int = 100_000) -> int:
    """Send what is due at ``now`` (default: the wall clock), round after round while each
    round finds work (the next event of an employee becomes due when the one before it is
    delivered); the number of attempts made. A round's attempts are recorded together when
    its last one ends (a process that dies before leaves its claims to run out: the
    deliveries are sent again, at least once holds)."""
    limit = b2b.config.webhook_concurrency
    attempts = 0
    for _ in range(max_rounds):
        at = now or datetime.now(timezone.utc)
        due = await b2b.run(b2b.store.claim_deliveries, at, limit, b2b.worker, wall_clock(), LEASE)
        if not due:
            break
        made = await asyncio.gather(*(_send(b2b, session, d, at) for d in due))
        await b2b.run(b2b.store.record_attempts, made)
        attempts += len(made)
    return attempts


async def webhook_worker(b2b: B2B, stop: asyncio.Event) -> None:
    """Send due deliveries every ``webhook_poll_seconds``, or at once when a change wakes it."""
    async with webhook_session(b2b) as session:
        while not stop.is_set():
            try:
                await deliver_due(b2b, session)
            except Exception:  # noqa: BLE001 - the worker outlives one bad round; the log says why
                log.exception("webhook delivery round failed")
            b2b.wake.clear()
            await _wait(b2b.wake, b2b.config.webhook_poll_seconds)  # stopping sets wake too


async def rollover_worker(b2b: B2B, stop: asyncio.Event) -> None:
    """Run the roll-over every ``rollover_interval_seconds`` (and at start); its documents are
    the document worker's."""
    while not stop.is_set():
        try:
            result = await rollover(b2b, datetime.now(timezone.utc), render=False)
            if result.issued or result.refreshed or result.revoked:
                log.info("roll-over: %s", result.as_json())
        except Exception:  # noqa: BLE001
            log.exception("roll-over failed")
        await _wait(stop, b2b.config.rollover_interval_seconds)


async def document_worker(b2b: B2B, stop: asyncio.Event) -> None:
    """Render waiting documents as soon as this process's roll-over issued tickets, and every
    ``document_poll_seconds`` (another process's roll-over, a render to retry)."""
    while not stop.is_set():
        b2b.documents_due.clear()
        try:
            await render_documents(b2b)
        except Exception:  # noqa: BLE001
            log.exception("document rendering failed")
        await _wait(b2b.documents_due, b2b.config.document_poll_seconds)  # stopping sets it too


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
