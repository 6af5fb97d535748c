"""The agent's metrics on its loopback port (issue 14.6), read back with prometheus-client's
own parser: scans by result code, decision latency, outbox, list ages, alarms, sync errors."""
from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from agent.config import AgentConfig
from agent.sync import Transient

from .conftest import device_config, free_port
from .test_agent_server import issue
from .test_revocation_push import until


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain; version=")
            return parse(await reply.read())


def parse(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of the Prometheus text format by (name, sorted labels), read by prometheus-client's parser."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text.decode()) for sample in family.samples}


async def test_scans_latency_outbox_lists_alarms_and_sync_errors(server, backoffice, make_agent):
    _, barcode = await issue(backoffice)
    port = free_port()
    agent = make_agent(server.origin, metrics={"port": port})
    await agent.syncer.sync_once()
    running = asyncio.create_task(agent.run(install_signal_handlers=False))
    try:
        for raw in (barcode.encode(), barcode.encode(), os.urandom(30)):  # accepted, passed back, unreadable
            await agent.handle_scan(raw)
        await until(lambda: agent.engine.cache.outbox_count() == 0, "the uploads")
        seen = await scrape(port)
        assert {code: seen[("mtb_agent_scans_total", (("result", str(code)),))] for code in range(10)} == \
            {0: 1, 1: 1, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 1, 9: 0}
        assert seen[("mtb_agent_decision_seconds_count", ())] == 3
        assert seen[("mtb_agent_decision_seconds_bucket", (("le", "+Inf"),))] == 3
        assert seen[("mtb_agent_outbox_events", ())] == 0
        assert 0 <= seen[("mtb_agent_list_age_seconds", (("list", "deny-list"),))] < 60
        assert seen[("mtb_agent_alarms", ())] == 0
        assert seen[("mtb_agent_sync_errors_total", (("channel", "upload"),))] == 0
        assert abs(seen[("mtb_agent_clock_skew_seconds", ())]) < 30

        server.stop()  # the link fails: the next event waits, the uploader counts its failures
        await agent.handle_scan(os.urandom(30))
        with pytest.raises(Transient):
            await agent.syncer.upload_pending()
        await agent.engine.run(agent.engine.cache.raise_alarm, "reader", "barcode reader disconnected")
        seen = await scrape(port)
        assert seen[("mtb_agent_outbox_events", ())] == 1
        assert seen[("mtb_agent_sync_errors_total", (("channel", "upload"),))] >= 1
        assert seen[("mtb_agent_alarm", (("kind", "reader"),))] == 1 and seen[("mtb_agent_alarms", ())] == 1
    finally:
        agent.stop.set()
        await asyncio.wait_for(running, 30)
    with pytest.raises(aiohttp.ClientConnectorError):  # the port closes with the agent
        await scrape(port)


def test_metrics_are_off_by_default_and_only_on_loopback(tmp_path):
    assert device_config(tmp_path, "http://127.0.0.1:1").metrics.port is None
    config = device_config(tmp_path, "http://127.0.0.1:1").model_dump(mode="json")
    for host in ("0.0.0.0", "192.168.1.5", "example.org"):
        with pytest.raises(ValidationError, match="loopback"):
            AgentConfig.model_validate({**config, "metrics": {"port": 9100, "host": host}})
    assert AgentConfig.model_validate({**config, "metrics": {"port": 9100, "host": "::1"}}).metrics.host == "::1"
