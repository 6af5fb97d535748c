"""The package surface: factories, and the layer rule (hardware never imports agent/server)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hardware
from hardware import (
    ConsoleFeedback,
    FixedPosition,
    NmeaGps,
    SerialFeedback,
    SerialReader,
    SimulatedFeedback,
    SimulatedReader,
    SimulatedRoute,
    make_feedback,
    make_position,
    make_reader,
)


async def test_make_reader(tmp_path):
    r = make_reader(kind="serial", url="loop://", framing="length-prefixed", max_len=512)
    assert isinstance(r, SerialReader) and r.framing == "length-prefixed" and r.framer.max_len == 512
    (tmp_path / "m.txt").write_text("AAAA\nBBBB\n")
    sim = make_reader("simulated", file=str(tmp_path / "m.txt"), finish=True)
    assert isinstance(sim, SimulatedReader)
    assert [s async for s in sim.scans()] == [b"AAAA", b"BBBB"]
    with pytest.raises(ValueError):
        make_reader("usb")
    with pytest.raises(TypeError):
        make_reader("serial", url="loop://", framming="line")  # typos are not ignored


def test_make_position_and_feedback():
    assert isinstance(make_position("nmea", url="loop://"), NmeaGps)
    fixed = make_position("fixed", lat=59.33, long=18.06)
    assert isinstance(fixed, FixedPosition) and fixed.current().lat == 59.33
    assert isinstance(make_position("route", waypoints=[(59.0, 18.0)]), SimulatedRoute)
    assert isinstance(make_feedback("console"), ConsoleFeedback)
    assert isinstance(make_feedback("serial", url="loop://"), SerialFeedback)
    assert isinstance(make_feedback("simulated"), SimulatedFeedback)
    with pytest.raises(ValueError):
        make_position("glonass")
    with pytest.raises(ValueError):
        make_feedback("buzzer")


def test_hardware_knows_nothing_of_tickets():
    root = Path(hardware.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in {"agent", "server"}, f"{path.name} imports {name}"
