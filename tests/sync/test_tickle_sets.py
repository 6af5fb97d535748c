"""TICKLE macro sets as the device keeps them (issue 12): checked whole, kept by serial as the
server sent them (opaque: evaluating them is later work), written only when they change, and
following what the real server publishes from its data directory."""
from __future__ import annotations

import json
import os

import pytest

from agent.sync import BadFeedData, tickle_sets

from .conftest import HIGH_LIMIT

PEAK = {"pid": 1234, "serial": 1, "macros": [{"name": "peak", "condition": "t in 07:00-09:00"}]}
NIGHT = {"pid": 1234, "serial": 2, "macros": [{"name": "night", "condition": "t in 00:00-05:00",
                                                "description": "night buses"}]}


def test_sets_are_kept_by_serial_and_written_only_when_they_change(cache):
    assert cache.replace_tickle_sets(tickle_sets([PEAK, NIGHT])) == 2
    assert {serial: json.loads(body) for serial, (_, body) in cache.tickle_sets().items()} == {1: PEAK, 2: NIGHT}
    assert cache.replace_tickle_sets(tickle_sets([NIGHT, PEAK])) == 0  # the same sets: nothing written
    changed = {**NIGHT, "serial": 3, "macros": []}
    assert cache.replace_tickle_sets(tickle_sets([PEAK, changed])) == 2  # 2 withdrawn, 3 published
    assert sorted(cache.tickle_sets()) == [1, 3]


@pytest.mark.parametrize("body", [
    {"pid": 1234},  # not a list
    [{"pid": 1234, "serial": "1", "macros": []}],
    [{"pid": 1234, "serial": 1, "macros": [{"name": "peak"}]}],  # a macro without its condition
    [{"pid": True, "serial": 1, "macros": []}],
    [PEAK, PEAK],  # one serial twice
])
def test_a_malformed_answer_is_refused_whole(body):
    with pytest.raises(BadFeedData):
        tickle_sets(body)


def publish(server, sets: list[dict] | None, version: int) -> None:
    """The operator edits tickle-macros.json (None: removes it); the server re-reads it by mtime."""
    path = server.data_dir / "tickle-macros.json"
    if sets is None:
        path.unlink()
        return
    path.write_text(json.dumps(sets))
    os.utime(path, ns=(version * 10 ** 9, version * 10 ** 9))  # a new mtime even within one clock tick


async def test_the_device_follows_what_the_server_publishes(start_server, make_device):
    server = start_server(rate_limit=HIGH_LIMIT)
    device = make_device(server.base)
    feed = device.syncer.feed("tickle-macros")

    await device.syncer.sync_once()  # nothing published: a 404, and no error
    assert device.cache.tickle_sets() == {} and feed.status.failures == 0

    publish(server, [PEAK, NIGHT], 1)
    await device.syncer.sync_once()
    assert {serial: json.loads(body) for serial, (_, body) in device.cache.tickle_sets().items()} == \
        {1: PEAK, 2: NIGHT}

    publish(server, [PEAK], 2)  # the night set withdrawn
    await device.syncer.sync_once()
    assert sorted(device.cache.tickle_sets()) == [1]

    publish(server, None, 3)  # none published any more: the device holds none either
    await device.syncer.sync_once()
    assert device.cache.tickle_sets() == {} and feed.status.failures == 0
