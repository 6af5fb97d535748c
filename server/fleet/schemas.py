"""What a device reports about itself, and what the fleet view shows of it."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ..models import Text

Seconds = Annotated[float, Field(ge=0, le=10 ** 9, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=100)]


class Outbox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depth: int = Field(ge=0, le=10 ** 9, description="events waiting to be uploaded")
    oldestEventAgeSeconds: Seconds | None = Field(None, description="how long the oldest of them has waited")
    parked: int = Field(0, ge=0, le=10 ** 9, description="events the server refused, kept aside")


class Alarm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Name
    since: Annotated[str, Field(max_length=40)] | None = Field(None, description="ISO 8601")
    message: Text | None = None


class CacheHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool
    detail: Text | None = None


class DeviceState(BaseModel):
    """``POST /device/state``: the device's own view of itself at a sync."""

    model_config = ConfigDict(extra="forbid")

    softwareVersion: Name
    outbox: Outbox
    listAgesSeconds: dict[Name, Seconds | None] = Field(
        default_factory=dict, max_length=20,
        description="age of each list the device holds (deny list, uses, metadata, KDKs, stops); null: never loaded")
    alarms: list[Alarm] = Field(default_factory=list, max_length=50, description="alarms raised and not cleared")
    clockSkewSeconds: Annotated[float, Field(ge=-10 ** 9, le=10 ** 9, allow_inf_nan=False)] | None = Field(
        None, description="device clock minus the server's Date header at the last sync")
    cache: CacheHealth


class StateReceived(BaseModel):
    device: str
    receivedAt: str = Field(json_schema_extra={"format": "date-time"})


class DeviceStatus(BaseModel):
    """One device in the fleet view: its latest report and when it was last heard from."""

    deviceId: str
    lastContact: str = Field(json_schema_extra={"format": "date-time"})
    silentSeconds: int
    silent: bool = Field(description="no report for longer than device_silent_seconds (or staleAfter)")
    state: DeviceState
