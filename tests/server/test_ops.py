"""``/health`` and ``/metrics`` on both backends: the health answer follows the database, and
the metrics, read with prometheus-client's own parser, count what the test did."""
from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from server.context import CTX

from .conftest import Api, event


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_health_says_ok_and_names_the_backend(api, backend):
    reply = await api.get("/health", role=None)
    assert reply.status == 200 and reply.body["status"] == "ok" and reply.body["database"] == "ok"
    assert reply.body["dialect"] == backend and reply.body["schemaVersion"] >= 2


async def test_health_is_503_when_the_database_is_gone(make_server, backend, request):
    d = make_server()
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        assert (await api.get("/health", role=None)).status == 200
        store = d.server.app[CTX].store
        if backend == "sqlite":
            store.db.close()  # the server's connection is gone
        else:
            name = d.config.database.rsplit("/", 1)[1]
            request.getfixturevalue("postgres_server")._admin(f'DROP DATABASE "{name}" WITH (FORCE)')  # every connection cut
        d.server.app[CTX].cache.pop("health", None)  # not the answer remembered for a second
        reply = await api.get("/health", role=None)
        assert reply.status == 503 and reply.body["status"] == "unavailable" and reply.body["database"] != "ok"
        assert "postgresql://" not in reply.text  # no connection details


async def test_metrics_count_requests_events_and_the_deny_list(make_server):
    d = make_server()
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        for _ in range(3):
            assert (await api.get("/blacklist", role="val")).status == 200
        assert (await api.get("/blacklist", token="not-a-token")).status == 401
        batch = [event("T-m", "m-1"), event("T-m", "m-2")]
        assert (await api.post("/validation", batch, role="val")).status == 200
        assert (await api.post("/validation", [*batch, event("T-m", "m-3")], role="val")).status == 200
        tid = await api.ticket_id("trav-m")
        assert (await api.put(f"/ticket/{tid}/revoke", role="pos")).status == 200
        reply = await api.get("/metrics", role=None)
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    scrape = samples(reply.text)
    requests = "mtb_server_http_requests_total"
    assert value(scrape, requests, route="getBlacklist", method="GET", status="200") == 3
    assert value(scrape, requests, route="getBlacklist", method="GET", status="401") == 1
    assert value(scrape, requests, route="postValidations", method="POST", status="200") == 2
    assert value(scrape, "mtb_server_http_request_duration_seconds_count", route="getBlacklist") == 4
    assert value(scrape, "mtb_server_events_ingested_total", kind="validation", outcome="stored") == 3
    assert value(scrape, "mtb_server_events_ingested_total", kind="validation", outcome="duplicate") == 2
    assert value(scrape, "mtb_server_deny_list_entries") == 1
    assert value(scrape, "mtb_server_deny_list_newest_id") >= 1
    assert not any("/" in dict(labels).get("route", "") for _, labels in scrape)  # routes, never raw paths


async def test_metrics_are_refused_outside_metrics_allow(make_server):
    d = make_server(metrics_allow=["192.0.2.0/24"])
    async with aiohttp.ClientSession() as session:
        reply = await Api(d, session).get("/metrics", role=None)
    assert reply.status == 403 and reply.body["code"] == "forbidden"


def test_a_bad_network_in_metrics_allow_is_refused():
    import pytest
    from pydantic import ValidationError

    from server.config import ServerConfig
    with pytest.raises(ValidationError, match="metrics_allow"):
        ServerConfig(metrics_allow=["not-a-network"])
