"""TICKLE macro sets (BoB Validation API ``tickleMacros``): named conditions an MTB's ``c_tc``
refers to, published by the operator in ``tickle-macros.json`` in the data directory::

    [{"pid": 1234, "serial": 1, "macros": [{"name": "peak", "condition": "...", "description": "..."}]}]

The serial is the set's version: a changed set gets a new serial (a validator keeps the sets
it has by serial and fetches the ones it lacks). The server only publishes them; it does not
evaluate them.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter

MAX_SETS, MAX_MACROS = 1000, 10_000


class TickleMacro(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    condition: Annotated[StrictStr, Field(min_length=1, max_length=10_000)]
    description: Annotated[StrictStr, Field(max_length=1000)] | None = None


class TickleMacroSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pid: Annotated[StrictInt, Field(ge=0, le=2 ** 53)]
    serial: Annotated[StrictInt, Field(ge=0, le=2 ** 62)]
    macros: Annotated[list[TickleMacro], Field(max_length=MAX_MACROS)]

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


_SETS = TypeAdapter(Annotated[list[TickleMacroSet], Field(max_length=MAX_SETS)])


def tickle_sets(document: Any) -> dict[int, TickleMacroSet]:
    """The sets of a ``tickle-macros.json`` document by serial; ValueError when one is malformed
    or two share a serial."""
    by_serial: dict[int, TickleMacroSet] = {}
    for macro_set in _SETS.validate_python(document):
        if macro_set.serial in by_serial:
            raise ValueError(f"TICKLE macro set serial {macro_set.serial} appears twice")
        by_serial[macro_set.serial] = macro_set
    return by_serial
