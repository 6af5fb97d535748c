"""The agent process: scans in, decisions shown, events recorded, sync in the background.

One scan at a time per reader: the passenger in front of the validator gets the answer for
their own ticket, and the cache sees scans in order. Nothing in the scan loop waits on the
network; no exception leaves it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import time
import uuid
from collections import deque
from datetime import datetime
from functools import partial

from aiohttp import web

from hardware import Feedback, PositionSource, Reader
from hardware.aio import sleep_unless

from .cache import Cache
from .cache_file import CacheError, explain
from .clock import ClockWatch
from mtb.scan_context import Context, Service, Validator
from .engine import Decision, Engine, Velocity
from .logs import configure_logging
from .messages import OUT_OF_SERVICE
from .metrics import AgentMetrics
from .place import PositionTracker
from .stops import StopLocator
from .sync import Syncer
from .sync.fraudcheck import FraudCheck
from mtb.timeutil import format_extended, parse_time

log = logging.getLogger(__name__)
BOOT_ID = uuid.uuid4().hex  # distinguishes this process's monotonic clock from earlier runs'
RECENT_DECISIONS = 1000
MAINTENANCE_INTERVAL_S = 3600.0
TRUST_LIST_TOO_OLD = "trust list (participant metadata) too old"
PIPELINE_DEPTH = 32  # scans read ahead while earlier ones are decided


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) we are ready / alive; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)


class Agent:
    def __init__(self, *, engine: Engine, reader: Reader, feedback: Feedback, validator: Validator,
                 mode: str = "validation", tracker: PositionTracker | None = None, syncer: Syncer | None = None,
                 operator_pid: int | None = None, mode_of_transport: str | None = None,
                 service: Service | None = None, clock: ClockWatch | None = None,
                 metadata_max_age_s: float | None = None, validate_with_stale_metadata: bool = True,
                 history_days: float = 35.0, max_failed_recordings: int = 3, metrics: AgentMetrics | None = None,
                 metrics_address: tuple[str, int] | None = None, fraudcheck: FraudCheck | None = None) -> None:
        self.engine = engine
        self.reader = reader
        self.feedback = feedback
        self.validator = validator
        self.mode = mode
        self.tracker = tracker or PositionTracker(None, None)
        self.syncer = syncer
        self.operator_pid = operator_pid
        self.mode_of_transport = mode_of_transport
        self.service = service
        self.clock = clock or ClockWatch()
        self.metadata_max_age_s = metadata_max_age_s
        self.validate_with_stale_metadata = validate_with_stale_metadata
        self.stop = asyncio.Event()
        self.decisions: deque[Decision] = deque(maxlen=RECENT_DECISIONS)  # for status and tests; bounded
        self.decided = 0
        self.scans = 0
        self.failed = False
        self.history_days = history_days
        self.alarms: dict[str, str] = {}
        self.metrics = metrics
        self.metrics_address = metrics_address  # (host, port) to serve them on while running
        self.fraudcheck = fraudcheck  # the back office asked about each scan, when online
        self._alarms_changed: set[str] = set()  # kinds raised or cleared since the last write
        self.max_failed_recordings = max_failed_recordings
        self.failed_recordings = 0  # scans in a row that could not be recorded

    @property
    def cannot_record(self) -> bool:
        """Out of service: the last ``max_failed_recordings`` scans could not be recorded."""
        return self.failed_recordings >= self.max_failed_recordings

    # --- one scan -------------------------------------------------------------------------------

    def context(self) -> Context:
        jumps = self.clock.jump_count
        wall, mono = self.clock.read()
        if self.clock.jump_count > jumps:
            self.alarm("clock", f"wall clock jumped {self.clock.jumps[-1].seconds:+.0f} s")
        place = self.tracker.place()
        stop = place.stop_area
        return Context(time=wall, validator=self.validator, mode=self.mode,  # type: ignore[arg-type]
                       geo=place.geo, position_stale=place.stale, zone=stop.zone_id if stop else None,
                       stop_area=stop.stop_area_id if stop else None, mode_of_transport=self.mode_of_transport,
                       service=self.service, operator_pid=self.operator_pid, boot_id=BOOT_ID, monotonic=mono)

    async def handle_scan(self, raw: bytes) -> Decision | None:
        """Decide, record (durable), then show. Any failure shows red and is logged; the loop goes on."""
        return await self._show(self._submit(raw))

    def _submit(self, raw: bytes) -> asyncio.Future[tuple[Decision, str | None, str | None]]:
        """Take the scan's context now and queue its decision on the engine's thread."""
        self.scans += 1
        try:
            ctx = self.context()
            velocity = self.fraudcheck.ask(raw, ctx) if self.fraudcheck is not None else None
            pending = self.engine.schedule(self._decide, raw, ctx, velocity)
            if self.metrics is not None:
                pending.add_done_callback(partial(self._count, self.metrics, time.perf_counter()))
            return pending
        except Exception as exc:
            failed: asyncio.Future[tuple[Decision, str | None, str | None]] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    @staticmethod
    def _count(metrics: AgentMetrics, started: float,
               done: asyncio.Future[tuple[Decision, str | None, str | None]]) -> None:
        if not done.cancelled() and done.exception() is None:
            metrics.decided(done.result()[0].event_result, time.perf_counter() - started)

    def _decide(self, raw: bytes, ctx: Context,
                velocity: Velocity | None) -> tuple[Decision, str | None, str | None]:
        """On the engine's thread, in one hop: the clock floor and the trust list's state, then
        the decision (made durable there before the result comes back). Also returns the
        trust-list alarm and why the clock cannot be trusted (a clock below the floor, see
        :class:`agent.clock.ClockFloor`, cannot decide). ``velocity``: the back office's fraud
        check of this scan, when it was asked."""
        clock = self.engine.cache.clock.problem(ctx.time)
        alarm, refuse = self._trust_list_state(ctx.time)
        return self.engine.decide_and_record(raw, ctx, clock or refuse, velocity), alarm, clock

    def _trust_list_state(self, now: datetime) -> tuple[str | None, str | None]:
        """(alarm, refusal) from the participant metadata's age; an alarm of "" clears it, None
        leaves it. A device that never had a trust list is out of service: without keys every
        ticket would look forged. A stale one raises an alarm, and the config decides whether
        the device goes on validating."""
        if self.metadata_max_age_s is None:
            return None, None
        checked = self.engine.cache.get_meta("metadata_checked_at")
        if checked is None:
            return ("never synced with the server: no participant metadata (trust list)",
                    "never synced with the server: no trust list yet")
        age = (now - parse_time(checked)).total_seconds()
        if age <= self.metadata_max_age_s:
            return "", None
        return (f"participant metadata is {age:.0f} s old (max {self.metadata_max_age_s:.0f} s)",
                None if self.validate_with_stale_metadata else TRUST_LIST_TOO_OLD)

    async def _show(self, pending: asyncio.Future[tuple[Decision, str | None, str | None]]) -> Decision | None:
        try:
            decision, alarm, clock = await pending
        except Exception as exc:
            self._not_recorded(exc)
            await self._show_safely("red", OUT_OF_SERVICE if self.cannot_record else "Please try again", None)
            return None
        if self.failed_recordings:
            self.failed_recordings = 0
            self.clear_alarm("recording")
        self.decided += 1
        self.decisions.append(decision)
        if clock:
            self.alarm("clock-floor", clock)
        else:
            self.clear_alarm("clock-floor")
        if alarm:
            self.alarm("trust-list", alarm)
        elif alarm == "":
            self.clear_alarm("trust-list")
        if decision.out_of_service:
            await self._show_safely("red", decision.passenger_message, [decision.event_reason])
        else:
            try:
                lines = await self._details(decision)
            except Exception:  # the decision stands (it is recorded); only the extra lines are lost
                log.exception("could not gather the ticket's details")
                lines = [decision.event_reason]
            await self._show_safely(decision.colour, decision.passenger_message, lines)
        if self.syncer is not None:
            self.syncer.kick()
        try:
            await self._persist_alarms()
        except Exception:
            log.exception("could not record the alarms")
        return decision

    async def _show_safely(self, colour: str, text: str, lines: list[str] | None) -> None:
        try:
            await self.feedback.show(colour, text, lines)
        except Exception:
            log.exception("feedback device failed")

    async def _details(self, decision: Decision) -> list[str] | None:
        """Inspection mode shows the ticket, every failing check and its last events; a
        validator shows the reason only."""
        if self.mode != "inspection":
            return None if decision.accepted else [decision.event_reason]
        lines = decision.inspector_message.splitlines()
        for outcome in decision.outcomes:
            if outcome.ticket is None:
                continue
            uses = await self.engine.run(self.engine.cache.recent_uses, outcome.ticket_id, 4)
            for use in uses[1:]:  # the first is this inspection
                lines.append(f"  earlier: {format_extended(use.time)} {use.event_type} result {use.result} "
                             f"at {use.stop_area or use.device_id or '?'}")
        return lines

    def _not_recorded(self, exc: Exception) -> None:
        """A scan that could not be decided and recorded; after ``max_failed_recordings`` in a row
        the device is out of service, raises an alarm and stops feeding the watchdog."""
        self.failed_recordings += 1
        cache = self.engine.cache
        why = explain(exc, cache.path) if isinstance(exc, sqlite3.Error) else exc
        log.error("scan could not be recorded (%d in a row): %s", self.failed_recordings, why,
                  exc_info=not isinstance(exc, (sqlite3.Error, CacheError)))
        if self.cannot_record:
            self.alarm("recording", f"{self.failed_recordings} scans in a row could not be recorded: {why}")

    def alarm(self, kind: str, text: str) -> None:
        """Raise (or update) an alarm; logged at ERROR when it is raised, for the fleet's log watcher."""
        if kind not in self.alarms:
            log.error("ALARM %s: %s", kind, text)
            self._alarms_changed.add(kind)
        self.alarms[kind] = text

    def clear_alarm(self, kind: str) -> None:
        if self.alarms.pop(kind, None) is not None:
            log.warning("alarm %s cleared", kind)
            self._alarms_changed.add(kind)

    async def _persist_alarms(self) -> None:
        """Raised and cleared alarms go to the cache, where ``python -m agent status`` shows them
        (beside those sync raises there)."""
        changed, self._alarms_changed = self._alarms_changed, set()
        for kind in changed:
            if kind in self.alarms:
                await self.engine.run(self.engine.cache.raise_alarm, kind, self.alarms[kind])
            else:
                await self.engine.run(self.engine.cache.clear_alarm, kind)

    # --- the process ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Scans are decided and shown in the order they were read. While one is being decided
        the next ones are read and queued (up to PIPELINE_DEPTH): a queue of passengers then
        costs the engine's thread one hop and one fsync per batch, not per scan."""
        queued: asyncio.Queue[asyncio.Future[tuple[Decision, str | None, str | None]] | None] = asyncio.Queue(PIPELINE_DEPTH)
        showing = asyncio.create_task(self._show_in_order(queued), name="show")
        try:
            async for raw in self.reader.scans():
                await queued.put(self._submit(raw))
                if self.stop.is_set():
                    break
        finally:
            await queued.put(None)
            await showing

    async def _show_in_order(self, queued: asyncio.Queue[asyncio.Future[tuple[Decision, str | None, str | None]] | None]) -> None:
        while (pending := await queued.get()) is not None:
            await self._show(pending)

    async def _watchdog(self) -> None:
        """Ping systemd only while the engine's thread answers too: a scan stuck in SQLite (a
        hung disk, a lock) then ends in a restart instead of a validator that never answers."""
        interval = int(os.environ.get("WATCHDOG_USEC", "0")) / 2e6
        if interval <= 0:
            return
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.engine.run(lambda: None), interval)
                if self.cannot_record:
                    log.error("no scan can be recorded; withholding the watchdog ping")
                else:
                    sd_notify("WATCHDOG=1")
            except asyncio.TimeoutError:
                log.error("engine thread did not answer within %.0f s; withholding the watchdog ping", interval)
            await sleep_unless(self.stop, interval)

    async def _maintenance(self) -> None:
        """Hourly: forget usage older than the history horizon and deny entries long expired, so
        months of scans do not fill the disk (the outbox is never pruned: only acknowledgements empty it)."""
        while not self.stop.is_set():
            try:
                now = self.clock.read()[0]
                pruned = await self.engine.run(lambda: self.engine.cache.prune(now, history_days=self.history_days))
                if any(pruned):
                    log.info("pruned %d usage rows and %d expired deny entries", *pruned)
            except Exception:
                log.exception("cache maintenance failed")
            await sleep_unless(self.stop, MAINTENANCE_INTERVAL_S)

    async def _serve_metrics(self) -> web.AppRunner | None:
        """The metrics port, when configured; one that cannot be opened is logged, and the
        device validates on without it."""
        if self.metrics is None or self.metrics_address is None:
            return None
        try:
            return await self.metrics.serve(*self.metrics_address)
        except OSError as exc:
            log.error("metrics not served on %s:%d: %s", *self.metrics_address, exc)
            return None

    async def _reader_connected(self, timeout_s: float = 5.0) -> None:
        """READY means a passenger can scan: wait (briefly) for the reader's port to be open."""
        if not await sleep_unless(self.reader.connected, timeout_s):
            log.warning("reader not connected after %.0f s; starting anyway, it keeps retrying", timeout_s)

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until SIGTERM/SIGINT or until the reader ends; then finish the scan in hand and sync once."""
        loop = asyncio.get_running_loop()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
        background = [asyncio.create_task(self._watchdog(), name="watchdog"),
                      asyncio.create_task(self._maintenance(), name="maintenance")]
        if self.tracker.source is not None:
            background.append(asyncio.create_task(self.tracker.source.run(), name="position"))
        if self.syncer is not None:
            background.append(asyncio.create_task(self.syncer.run(self.stop), name="sync"))
        reading = asyncio.create_task(self._read_loop(), name="reader")
        serving = await self._serve_metrics()
        await self._reader_connected()
        sd_notify("READY=1")
        log.info("agent %s ready (%s mode)", self.validator.validator_id, self.mode)
        stopping = asyncio.create_task(self.stop.wait())
        await asyncio.wait([reading, stopping], return_when=asyncio.FIRST_COMPLETED)
        sd_notify("STOPPING=1")
        self.stop.set()
        await self.reader.close()  # ends scans(); a scan being decided finishes first
        [outcome] = await asyncio.gather(reading, return_exceptions=True)
        if isinstance(outcome, Exception):
            self.failed = True  # systemd restarts us (non-zero exit); never a silent stop
            log.error("the scan loop failed", exc_info=outcome)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if serving is not None:
            await serving.cleanup()
        if self.syncer is not None:
            try:
                await asyncio.wait_for(self.syncer.upload_pending(), timeout=3)
            except Exception as exc:  # offline at shutdown: the outbox keeps the events
                log.info("final upload skipped: %s", exc)
        log.info("agent %s stopped after %d scans", self.validator.validator_id, self.scans)


def build_agent(config, *, reader: Reader | None = None, feedback: Feedback | None = None,
                position: PositionSource | None = None) -> Agent:
    """An Agent from an AgentConfig; adapters may be given (tests, the simulator)."""
    from hardware import make_feedback, make_position, make_reader

    from .config import read_credentials
    from .stops import load_stops
    from .sync import ServerClient

    reader = reader or config.reader.build("reader", make_reader)
    feedback = feedback or config.feedback.build("feedback", make_feedback)
    if position is None and config.position is not None:
        position = config.position.build("position", make_position)
    credentials = None
    if config.server is not None:
        if config.server.credentials_file is None:
            raise ValueError("server.credentials_file is required to sync")
        credentials = read_credentials(config.server.credentials_file)
    cache = Cache(config.db, durability=config.durability, repair=True,
                  max_skew_s=config.clock.max_skew_seconds, floor_tolerance_s=config.clock.floor_tolerance_seconds)
    try:
        if config.stops_file is not None:
            cache.replace_stop_areas(load_stops(config.stops_file))
        areas = cache.stop_areas()
    except BaseException:
        cache.close()
        raise
    engine = Engine(cache, config.policy.policy())
    metrics = AgentMetrics(engine) if config.metrics.port else None
    syncer = fraudcheck = None
    if config.server is not None and credentials is not None:
        server = config.server
        client = ServerClient(server.base_url, *credentials, timeout_s=server.timeout_s, tls=server.tls(),
                              allow_insecure_http=server.allow_insecure_http,
                              max_requests_per_minute=server.max_requests_per_minute)
        if server.fraudcheck:
            fraudcheck = FraudCheck(client, server.fraudcheck_budget_ms / 1000,
                                    metrics.fraudcheck if metrics is not None else None)
        syncer = Syncer(engine, client, batch_size=server.batch_size, upload_interval_s=server.upload_interval_s,
                        feeds_interval_s=server.feeds_interval_s, long_poll_s=server.long_poll_s,
                        long_poll_gap_s=server.long_poll_gap_s, uses_horizon_s=config.policy.fleet_uses_horizon_s)
    tracker = PositionTracker(position, StopLocator(areas, config.stop_radius_m) if areas else None,
                              max_speed_kmh=config.policy.max_speed_kmh)
    if syncer is not None:
        syncer.on_stops = lambda new: setattr(tracker, "locator", StopLocator(new, config.stop_radius_m))
    return Agent(
        engine=engine,
        reader=reader,
        feedback=feedback,
        validator=Validator(config.device_id, config.location, config.sublocation),
        mode=config.mode,
        tracker=tracker,
        syncer=syncer,
        operator_pid=config.operator_pid,
        mode_of_transport=config.mode_of_transport,
        service=Service(config.service.service_id, config.service.trip_id, config.service.block_id)
        if config.service else None,
        metadata_max_age_s=config.policy.metadata_max_age_s if config.server is not None else None,
        validate_with_stale_metadata=config.policy.validate_with_stale_metadata,
        history_days=config.policy.history_days,
        max_failed_recordings=config.max_failed_recordings,
        metrics=metrics,
        metrics_address=(config.metrics.host, config.metrics.port) if config.metrics.port else None,
        fraudcheck=fraudcheck,
    )


async def close_agent(agent: Agent) -> None:
    if agent.fraudcheck is not None:
        await agent.fraudcheck.close()
    if agent.syncer is not None:
        await agent.syncer.client.close()
    await agent.feedback.close()
    agent.engine.close()
    agent.engine.cache.close()


def run_from_config(config, *, log_level: str = "INFO") -> int:
    """``python -m agent run``: the systemd service's entry point."""
    configure_logging(log_level, config.logging.format)

    async def main() -> int:
        agent = build_agent(config)
        try:
            await agent.run()
        finally:
            await close_agent(agent)
        return 1 if agent.failed else 0

    return asyncio.run(main())
