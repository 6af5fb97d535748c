"""``POST {base}/device/state`` (val, ins) and ``GET {base}/devices`` (admin)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from mtb.timeutil import format_extended

from ..context import ctx_of, principal_of
from ..endpoint import Api, Reply
from ..errors import json_response
from ..params import PAGING, body_model, page_headers, param, q_bool, q_int, q_page, q_sort, sort_param
from ..store import DEVICE_SORT_FIELDS, DeviceReport
from .schemas import DeviceState, DeviceStatus, StateReceived

api = Api("Fleet API", "Devices report their state at each sync; the operator sees the fleet")


@api.endpoint("POST", "/device/state", op="postDeviceState", roles=("val", "ins"), body=DeviceState,
              summary="Report this device's state (at each sync); the server keeps the latest per device",
              replies={200: Reply(StateReceived)})
async def post_device_state(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    device = principal_of(request).key
    state = await body_model(request, DeviceState)
    now = datetime.now(timezone.utc)
    report = DeviceReport(device=device, last_contact=now, software_version=state.softwareVersion,
                          outbox_depth=state.outbox.depth, alarm_count=len(state.alarms),
                          state=state.model_dump_json(exclude_none=True))
    await ctx.run(ctx.store.report_device, report)
    return json_response({"device": device, "receivedAt": format_extended(now)})


def status_json(report: DeviceReport, now: datetime, silent_after: int) -> dict[str, Any]:
    silent_for = max(0, int((now - report.last_contact).total_seconds()))
    return {"deviceId": report.device, "lastContact": format_extended(report.last_contact),
            "silentSeconds": silent_for, "silent": silent_for > silent_after, "state": json.loads(report.state)}


@api.endpoint("GET", "/devices", op="listDevices", roles="admin",
              summary="The fleet: each device's latest state report and last contact",
              description="Filters: silent=true|false (no report for longer than staleAfter seconds, default "
                          "device_silent_seconds), alarm=true|false (an alarm raised and not cleared).",
              params=(param("silent", "query", {"type": "boolean"}), param("alarm", "query", {"type": "boolean"}),
                      param("staleAfter", "query", {"type": "integer", "minimum": 1}),
                      sort_param(DEVICE_SORT_FIELDS, "lastContact"), *PAGING),
              replies={200: Reply(list[DeviceStatus], headers=("X-Total-Count", "Link"))})
async def list_devices(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    silent_after = q_int(request, "staleAfter", ctx.config.device_silent_seconds, 1, 10 ** 9) or 1
    sort_field, sort_order = q_sort(request, DEVICE_SORT_FIELDS, "lastContact", "asc")
    offset, limit = q_page(request)
    now = datetime.now(timezone.utc)
    found, total = await ctx.run(ctx.store.list_devices, silent_since=now - timedelta(seconds=silent_after),
                                 silent=q_bool(request, "silent"), alarm=q_bool(request, "alarm"),
                                 sort_field=sort_field, sort_order=sort_order, offset=offset, limit=limit)
    return json_response([status_json(r, now, silent_after) for r in found],
                         headers=page_headers(request, offset, limit, total))
