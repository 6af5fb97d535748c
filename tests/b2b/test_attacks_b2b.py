"""Attacks on the B2B API by a hostile (or careless) partner, over real HTTP on 127.0.0.1 with
real API keys: each must get a 4xx naming the field, never a 500, and leave nothing applied."""
from __future__ import annotations

import pytest

from .conftest import row

pytestmark = pytest.mark.usefixtures("world")


@pytest.mark.parametrize("extra, field", [
    # 9999-12-31 is how many HR systems (SAP among them) write "no end"; the day after it, or the
    # month after a pause ending then, is past the last date Python (and the stores) can hold
    ({"terminationDate": "9999-12-31"}, "employees[1].terminationDate"),
    ({"startDate": "9999-12-01", "terminationDate": "9999-12-31"}, "employees[1].startDate"),
    ({"absences": [{"startDate": "2024-02-01", "endDate": "9999-12-31"}]}, "employees[1].absences[0].endDate"),
    ({"absences": [{"startDate": "9999-12-01"}]}, "employees[1].absences[0].startDate"),
])
async def test_dates_at_the_end_of_the_calendar_are_422_naming_the_field(world, acme, extra, field):
    reply = await acme.sync([row("E-1"), row("E-2", **extra)])
    assert reply.status == 422, reply
    assert field in [d["field"] for d in reply.body["details"]], reply
    assert await acme.employees() == []  # nothing applied
    integration = await acme.get(f"/hr-integrations/{acme.integration}")
    assert integration.status == 200 and integration.body["data"]["lastSyncedAt"] is None, integration
