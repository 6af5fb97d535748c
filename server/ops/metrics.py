"""The server's Prometheus metrics (prometheus-client).

Counted as requests happen, per process: requests by route (the operation id, so the label set
is bounded) and status, a latency histogram per route, events ingested by kind and outcome.
Read from the database at each scrape: deny-list size and newest id, devices by state (see
:meth:`server.store.Store.fleet_gauges`).

Several worker processes (``serve --workers N``) share one port, so a scrape reaches any one of
them: they run in prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
the supervisor before the workers start), and the worker that answers adds up every worker's
counters and histograms from that directory. Per-worker labels would not do: each scrape would
see a different worker's numbers. The database-derived gauges are the same from any worker.
"""
from __future__ import annotations

import os
import time
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from ..endpoint import Handler

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # the *_created series double every series for no use here
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """One application's counters, on a registry of its own (tests run several apps in one
    process); in multiprocess mode their values go to the shared directory as well."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("mtb_server_http_requests", "HTTP requests answered, by route and status",
                                ("route", "method", "status"), registry=self.registry)
        self.latency = Histogram("mtb_server_http_request_duration_seconds",
                                 "Time from request to answer, by route (long-polls included as they wait)",
                                 ("route",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events = Counter("mtb_server_events_ingested", "Device events received, by kind and outcome "
                              "(stored, or duplicate of one stored before)", ("kind", "outcome"),
                              registry=self.registry)

    def count_events(self, kind: str, stored: int, duplicates: int) -> None:
        if stored:
            self.events.labels(kind, "stored").inc(stored)
        if duplicates:
            self.events.labels(kind, "duplicate").inc(duplicates)

    def exposition(self, gauges: dict[str, Any]) -> bytes:
        """The text format: this process's (or, in multiprocess mode, every worker's) counters,
        then the gauges read from the database."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = self.registry
        return generate_latest(registry) + generate_latest(_Gauges(gauges))


class _Gauges(CollectorRegistry):
    """The database-derived gauges as a registry of their own, for one scrape."""

    def __init__(self, values: dict[str, Any]):
        super().__init__(auto_describe=False)
        self._values = values

    def collect(self) -> Any:
        deny = GaugeMetricFamily("mtb_server_deny_list_entries", "Deny-list entries whose expire has not passed")
        deny.add_metric([], self._values["deny_active"])
        yield deny
        newest = GaugeMetricFamily("mtb_server_deny_list_newest_id", "The largest deny-list entry id")
        newest.add_metric([], self._values["deny_newest_id"])
        yield newest
        devices = self._values.get("devices")
        if devices is not None:
            family = GaugeMetricFamily("mtb_server_devices", "Devices by state at their last report "
                                       "(silent: no contact within the stale threshold)", labels=("state",))
            for state, count in sorted(devices.items()):
                family.add_metric([state], count)
            yield family


def route_of(request: web.Request) -> str:
    """The operation id of the matched endpoint: a bounded label, never the raw path."""
    route = request.match_info.route
    if request.match_info.http_exception is not None or route.name is None:
        return "unmatched"
    return route.name


def metrics_middleware(metrics: Metrics) -> Any:
    """Outermost: it sees the status the client gets, errors included."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    return middleware
