"""Request bodies (pydantic), after the BoB Ticket API v1 definitions.

Types are strict where a wrong type is a client bug worth a 422 (``"eventResult": "3"``,
``"issueMtb": "yes"``); times must carry a zone. ``ticketEvent`` tolerates unknown members
(newer devices, other vendors); the product-side bodies refuse them, so a typo is a 422 that
names the member rather than a silently ignored field.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

Id = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Text = Annotated[StrictStr, Field(max_length=1000)]
Pid = Annotated[StrictInt, Field(ge=0, le=2 ** 53)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Money = Annotated[float, Field(strict=True, ge=0, le=1e9, allow_inf_nan=False)]
MODES = ("bus", "tram", "train", "metro", "ferry")


def _iso_text(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string with a zone")
    return value


def _utc_in_range(value: datetime) -> datetime:
    """'0001-01-01T00:00:00+14:00' parses but has no UTC form: storing it raised OverflowError (a 500)."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None
    return value


IsoTime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_utc_in_range)]  # zone required


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MtbReference(_Tolerant):
    pid: Pid
    issuerSignature: Annotated[StrictStr, Field(max_length=200)]


class DeviceReference(_Tolerant):
    pid: Pid
    did: Id


class GeoPosition(_Tolerant):
    lat: Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
    long: Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
    alt: Float | None = None


class StopArea(_Tolerant):
    pid: Pid
    stopAreaId: Id
    nextStopAreaId: Id | None = None


class Zone(_Tolerant):
    pid: Pid
    zoneId: Id


class Service(_Tolerant):
    pid: Pid
    serviceId: Id
    tripId: Id | None = None
    blockId: Id | None = None


class Validator(_Tolerant):
    validatorId: Id | None = None
    location: Text | None = None
    sublocation: Text | None = None


class TicketEvent(_Tolerant):
    """A validation or inspection event as a device reports it (BoB ``ticketEvent``)."""

    ticketId: Id
    localEventId: Id | None = None
    time: IsoTime
    eventType: Literal["inspection", "validation"] | None = None
    eventResult: Annotated[StrictInt, Field(ge=0, le=9)] | None = None
    eventReason: Text | None = None
    eventId: StrictStr | None = None  # allocated by the server; a client's value is replaced
    mtbReference: MtbReference | None = None
    deviceReference: DeviceReference | None = None
    geo: GeoPosition | None = None
    stopArea: StopArea | None = None
    zone: Zone | None = None
    service: Service | None = None
    modeOfTransport: Annotated[StrictStr, Field(max_length=50)] | None = None
    validator: Validator | None = None
    operatingDayDate: date | None = None


class Fare(_Strict):
    amount: Money  # excluding VAT
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    vatAmount: Money
    vatPercent: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]


class ManifestRequest(_Strict):
    """``POST /manifest``: what a product server asks to have signed."""

    productId: Id
    fare: Fare
    validitySeconds: Annotated[StrictInt, Field(ge=60, le=400 * 86400)]
    zones: Annotated[list[Id], Field(max_length=200)] | None = None
    modes: Annotated[list[Literal["bus", "tram", "train", "metro", "ferry"]], Field(max_length=5)] | None = None
    stopAreas: Annotated[list[Id], Field(max_length=500)] | None = None
    category: Annotated[StrictStr, Field(min_length=1, max_length=50)] | None = None
    count: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    startWindowSeconds: Annotated[StrictInt, Field(ge=0, le=400 * 86400)] = 30 * 86400


class TicketHolder(_Tolerant):
    travellerId: Id
    travellerName: Text | None = None


class ManifestCall(BaseModel):
    """``POST /ticket`` (BoB ``manifestCall``); unknown members are ignored."""

    model_config = ConfigDict(extra="ignore")

    manifestMtbTemplate: Annotated[StrictStr, Field(min_length=1, max_length=32 * 1024)]
    bookingId: Id | None = None
    issueMtb: StrictBool = False
    recoverTicketId: Id | None = None
    requestId: Id | None = None
    startOfValidity: IsoTime | None = None
    ticketHolder: TicketHolder | None = None


class TicketBundleRequest(_Strict):
    ticketIds: Annotated[list[Id], Field(min_length=1, max_length=100)]


class DeviceKeyRequest(_Strict):
    did: Id


class ActiveStatusBody(_Strict):
    activeStatus: StrictBool
