"""The fleet view: devices report their state, admins list the latest of each (filters, sort,
pages), ``python -m server devices`` prints it and flags silent devices, and ``/metrics``
counts devices by state."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from server.store import DeviceReport

ROOT = Path(__file__).resolve().parents[2]


def state(version: str = "1.4.0", depth: int = 0, alarms: list | None = None, **extra) -> dict:
    return {"softwareVersion": version, "outbox": {"depth": depth, "oldestEventAgeSeconds": 12.5 if depth else None,
                                                   "parked": 1},
            "listAgesSeconds": {"denyList": 3.0, "uses": 1.5, "participantMetadata": None},
            "alarms": alarms or [], "clockSkewSeconds": -0.4, "cache": {"ok": True}, **extra}


async def test_devices_report_and_the_fleet_view_filters_sorts_and_pages(make_server, api_for):
    d = make_server()
    api = await api_for(d)
    assert (await api.post("/device/state", state(depth=3), role="val")).status == 200
    alarm = [{"kind": "clock_jump", "since": "2026-11-27T08:00:00Z", "message": "clock moved 400 s"}]
    reply = await api.post("/device/state", state(depth=40, alarms=alarm), role="ins")
    assert reply.status == 200 and reply.body["device"] == "ins1"
    # a device last heard from an hour ago (stored as any server process would have)
    store = d.store()
    store.report_device(DeviceReport("val2", datetime.now(timezone.utc) - timedelta(hours=1), "1.3.9", 7, 0,
                                     '{"softwareVersion":"1.3.9","outbox":{"depth":7},"cache":{"ok":false}}'))
    store.close()
    assert (await api.post("/device/state", state(depth=5), role="val")).status == 200  # the latest replaces

    listed = await api.get("/devices", params={"sortField": "outboxDepth", "sortOrder": "desc"})
    assert listed.status == 200 and listed.headers["X-Total-Count"] == "3"
    assert [(x["deviceId"], x["state"]["outbox"]["depth"]) for x in listed.body] == [("ins1", 40), ("val2", 7),
                                                                                      ("val1", 5)]
    assert listed.body[0]["state"]["alarms"] == alarm and listed.body[2]["silent"] is False
    assert [x["deviceId"] for x in (await api.get("/devices", params={"silent": "true"})).body] == ["val2"]
    assert [x["deviceId"] for x in (await api.get("/devices", params={"alarm": "true"})).body] == ["ins1"]
    assert (await api.get("/devices", params={"silent": "true", "staleAfter": "7200"})).body == []
    page = await api.get("/devices", params={"pageSize": "1", "page": "2"})  # oldest contact first by default
    assert [x["deviceId"] for x in page.body] == ["ins1"] and 'rel="next"' in page.headers["Link"]

    assert (await api.get("/devices", role="val")).status == 403
    bad = await api.post("/device/state", {**state(), "outbox": {"depth": -1}}, role="val")
    assert bad.status == 422 and any(x["field"] == "outbox.depth" for x in bad.body["details"])
    assert (await api.post("/device/state", state(), role="pos")).status == 403

    scrape = (await api.get("/metrics", role=None)).text
    devices = {s.labels["state"]: s.value for f in text_string_to_metric_families(scrape) for s in f.samples
               if s.name == "mtb_server_devices"}
    assert devices == {"ok": 1, "alarm": 1, "silent": 1}

    out = subprocess.run([sys.executable, "-m", "server", "devices", "--data", str(d.data_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    silent = [line for line in lines if "SILENT" in line and not line.startswith("DEVICE")]
    assert len(silent) == 1 and silent[0].startswith("val2")
    assert "clock_jump" in next(line for line in lines if line.startswith("ins1"))
    assert lines[-1] == "3 devices: 1 ok, 1 with alarms, 1 silent (no report for over 900 s)"
