"""The HR sync body (``POST /hr-integrations/{id}/sync``), validated row by row.

The published example gives the members; what it leaves open is decided here (and in the
README): ``hrId`` is the match key (unique within the body); ``startDate`` is required;
``terminationDate`` is the last day employed (not before ``startDate``); ``absences`` are
``{"startDate", "endDate"}`` periods (``endDate`` null: open-ended; a pause covers only whole
calendar months); ``autoSyncEmployee: false`` keeps an employee out of the sync's hands (not
added, not changed, not offboarded), null or true lets the sync manage them. ``plan`` is an
extension: ``{"type", "employeeContributionAmount"}``, default the company's plan.
``allowEmptyRoster: true`` is how a caller says an empty roster really means "offboard everyone".
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr,
                      ValidationError, WithJsonSchema, model_validator)

from ..errors import validation_details

MAX_ROWS = 50_000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("is not an e-mail address")
    return value


def _day(value: object) -> object:
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError("must be a date YYYY-MM-DD before 9999-01-01")
    return value


# Year 9999 is refused: the day after a termination, or the month after a pause, must still be
# a date (HR systems write 9999-12-31 for "no end"; here that is a missing terminationDate).
_DAY = re.compile(r"^(?!9999)\d{4}-\d{2}-\d{2}$")
Day = Annotated[date, BeforeValidator(_day),
                WithJsonSchema({"type": "string", "format": "date", "pattern": _DAY.pattern})]
Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Email = Annotated[StrictStr, Field(max_length=254), AfterValidator(_email),
                  WithJsonSchema({"type": "string", "maxLength": 254, "pattern": _EMAIL.pattern})]
HrId = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class Absence(_Row):
    startDate: Day
    endDate: Day | None = None

    @model_validator(mode="after")
    def _order(self) -> "Absence":
        if self.endDate is not None and self.endDate < self.startDate:
            raise ValueError("endDate is before startDate")
        return self


class RowPlan(_Row):
    type: Literal["fully-subsidized-plan", "split-pay-plan"]
    employeeContributionAmount: Annotated[float, Field(gt=0, lt=1_000_000, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _contribution(self) -> "RowPlan":
        if (self.type == "split-pay-plan") != (self.employeeContributionAmount is not None):
            raise ValueError("employeeContributionAmount is required for a split-pay-plan and only for it")
        return self


class RosterRow(_Row):
    firstName: Name
    lastName: Name
    email: Email
    hrId: HrId
    startDate: Day
    profileImage: Annotated[StrictStr, Field(max_length=2000)] | None = None
    dateOfBirth: Day | None = None
    terminationDate: Day | None = None
    autoSyncEmployee: StrictBool | None = None
    absences: Annotated[list[Absence], Field(max_length=50)] = Field(default_factory=list)
    plan: RowPlan | None = None

    @model_validator(mode="after")
    def _termination(self) -> "RosterRow":
        if self.terminationDate is not None and self.terminationDate < self.startDate:
            raise ValueError("terminationDate is before startDate")
        return self

    @property
    def managed(self) -> bool:
        return self.autoSyncEmployee is not False


class SyncHead(BaseModel):
    """The body without its rows (rows are validated one by one, so every bad row is named)."""

    model_config = ConfigDict(extra="forbid")

    syncId: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    employees: Annotated[list[Any], Field(max_length=MAX_ROWS)]
    allowEmptyRoster: StrictBool = False


class SyncBody(SyncHead):
    """The body as the OpenAPI document shows it (:func:`parse` validates the rows one by one)."""

    employees: Annotated[list[RosterRow], Field(max_length=MAX_ROWS)]


class RosterError(Exception):
    """The body is not a roster the sync can apply: ``details`` name every bad row and field
    (``employees[3].email``, index 3), at most 100 of them."""

    def __init__(self, details: list[dict[str, Any]]):
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        super().__init__(f"{first['field']}: {first['message']}{more}")
        self.details = details


def parse(body: Any) -> tuple[SyncHead, list[RosterRow]]:
    """The validated head and rows; RosterError listing the bad rows (nothing may be applied)."""
    if not isinstance(body, dict):
        raise RosterError([{"field": "(body)", "message": "must be a JSON object"}])
    try:
        head = SyncHead.model_validate(body)
    except ValidationError as exc:
        raise RosterError(validation_details(exc)) from None
    rows: list[RosterRow] = []
    details: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(head.employees):
        if len(details) >= 100:
            break
        try:
            row = RosterRow.model_validate(raw)
        except ValidationError as exc:
            for item in validation_details(exc, f"employees[{index}]"):
                details.append({**item, "index": index})
            continue
        if row.hrId in seen:
            details.append({"field": f"employees[{index}].hrId", "index": index,
                            "message": f"hrId {row.hrId!r} is also in employees[{seen[row.hrId]}]"})
            continue
        seen[row.hrId] = index
        rows.append(row)
    if details:
        raise RosterError(details[:100])
    return head, rows


def body_hash(body: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces): the same roster sent with other
    whitespace or member order is the same body for ``syncId`` idempotence."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
