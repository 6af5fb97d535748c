"""The state report: at each sync the device tells the server how it is (``POST /device/state``:
software version, outbox, list ages, alarms, clock skew, cache health), so the operator sees
the fleet in one place (``GET /devices``) instead of logging into each device. One request per
feed interval; a back office without the endpoint (404) is no error."""
from __future__ import annotations

import json

from ..engine import Engine
from .channel import Channel
from .client import ServerClient
from .device_state import CacheCheck, read_state, software_version
from .errors import Rejected
from .status import SyncStatus


class StateReport(Channel):
    name = "state"
    path = "/device/state"

    def __init__(self, engine: Engine, client: ServerClient, *, interval_s: float) -> None:
        super().__init__(engine, client, interval_s=interval_s)
        self.cache_check = CacheCheck(self.cache.path)
        self.version = software_version()

    async def attempt(self, status: SyncStatus) -> int:
        health = await self.cache_check.current()
        state = await self.engine.run(read_state, self.cache, self.client.clock.wall())
        try:
            await self.client.call("POST", self.path, json_text=json.dumps(state.report(self.version, health)))
        except Rejected as exc:
            if exc.status == 404:
                return 0
            raise
        return 1
