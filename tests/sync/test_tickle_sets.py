"""TICKLE macro sets as the device keeps them (issue 12): checked whole, kept by serial as the
server sent them (opaque: evaluating them is later work), written only when they change."""
from __future__ import annotations

import json

import pytest

from agent.sync import BadFeedData, tickle_sets

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
