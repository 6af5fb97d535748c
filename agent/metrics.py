"""The device's metrics, in the Prometheus text format (prometheus-client), on a loopback port
(``[metrics] port``; off by default): a fleet's monitoring scrapes each device through its own
tunnel or agent, nothing listens beyond the device itself.

- ``mtb_agent_scans_total{result}``: scans decided, by ticketEvent result code (0 accepted).
- ``mtb_agent_decision_seconds``: from a scan read to its decision recorded (durably).
- ``mtb_agent_fraudchecks_total{outcome}``: the back office's fraud check per scan (answered in
  time, unanswered, unsupported by the server, not asked; :data:`agent.sync.fraudcheck.OUTCOMES`).
- ``mtb_agent_outbox_events``, ``mtb_agent_outbox_parked_events``, ``mtb_agent_outbox_oldest_age_seconds``.
- ``mtb_agent_list_age_seconds{list}``: since each list was last brought up to date (+Inf: never).
- ``mtb_agent_alarm{kind}`` (1 while raised) and ``mtb_agent_alarms``.
- ``mtb_agent_sync_errors_total{channel}``: failed attempts of each feed, the uploader and the
  state report, since the cache was made.
- ``mtb_agent_clock_skew_seconds``: the device clock minus the server's ``Date``.

Scans, decision times and fraud checks are counted as they happen; the rest is read from the cache at each
scrape, with the state report's own reading (:mod:`.sync.device_state`).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mtb.timeutil import utcnow

from .engine import Engine
from .sync.fraudcheck import OUTCOMES, Outcome
from .sync.device_state import DeviceState, read_state

log = logging.getLogger(__name__)
RESULT_CODES = range(10)
DECISION_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AgentMetrics:
    """One device's metrics in a registry of its own (several agents in one process, as in the
    simulator and the tests, do not mix)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry()
        self.scans = Counter("mtb_agent_scans", "Scans decided, by ticketEvent result code (0 accepted)", ["result"],
                             registry=self.registry)
        for code in RESULT_CODES:
            self.scans.labels(str(code))  # every code from the start: a rate over a missing series is no rate
        self.decision_seconds = Histogram("mtb_agent_decision_seconds",
                                          "From a scan read to its decision recorded durably",
                                          buckets=DECISION_BUCKETS, registry=self.registry)
        self.fraudchecks = Counter("mtb_agent_fraudchecks", "The back office's fraud check per scan, by outcome",
                                   ["outcome"], registry=self.registry)
        for outcome in OUTCOMES:
            self.fraudchecks.labels(outcome)
        self._state = _StateCollector()
        self.registry.register(self._state)

    def decided(self, result: int, seconds: float) -> None:
        self.scans.labels(str(result)).inc()
        self.decision_seconds.observe(seconds)

    def fraudcheck(self, outcome: Outcome) -> None:
        """Count one scan's fraud check (called on the event loop)."""
        self.fraudchecks.labels(outcome).inc()

    async def render(self) -> bytes:
        """The text format, with the device's state read from its cache now."""
        self._state.state = await self.engine.run(read_state, self.engine.cache, utcnow())
        return generate_latest(self.registry)

    async def serve(self, host: str, port: int) -> web.AppRunner:
        """``GET /metrics`` on ``host:port``; the caller cleans the runner up."""
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        log.info("metrics on http://%s:%d/metrics", host, port)
        return runner


class _StateCollector(Collector):
    """The gauges and counters read from the cache (set just before each scrape)."""

    def __init__(self) -> None:
        self.state: DeviceState | None = None

    def collect(self) -> Iterator[Metric]:
        state = self.state
        if state is None:
            return
        yield GaugeMetricFamily("mtb_agent_outbox_events", "Events waiting to be uploaded", value=state.outbox_depth)
        yield GaugeMetricFamily("mtb_agent_outbox_parked_events", "Events the server refused, kept for an operator",
                                value=state.parked)
        yield GaugeMetricFamily("mtb_agent_outbox_oldest_age_seconds", "How long the oldest waiting event has waited",
                                value=state.oldest_event_age_s or 0.0)
        ages = GaugeMetricFamily("mtb_agent_list_age_seconds", "Since each list was last brought up to date "
                                 "(+Inf: never)", labels=["list"])
        for name, age in state.list_ages_s.items():
            ages.add_metric([name], math.inf if age is None else age)
        yield ages
        alarm = GaugeMetricFamily("mtb_agent_alarm", "Alarms raised and not cleared (1 each)", labels=["kind"])
        for kind in sorted(state.alarms):
            alarm.add_metric([kind], 1)
        yield alarm
        yield GaugeMetricFamily("mtb_agent_alarms", "How many alarms are raised", value=len(state.alarms))
        errors = CounterMetricFamily("mtb_agent_sync_errors", "Failed attempts of each sync channel", labels=["channel"])
        for channel, count in sorted(state.sync_errors.items()):
            errors.add_metric([channel], count)
        yield errors
        if state.clock_skew_s is not None:
            yield GaugeMetricFamily("mtb_agent_clock_skew_seconds", "Device clock minus the server's Date",
                                    value=state.clock_skew_s)
