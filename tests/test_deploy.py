"""The shipped example configs and unit files stay loadable and hardened."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from agent.stops import SAMPLE_STOPS, load_stops

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


@pytest.mark.parametrize("name", ["bus-validator.toml", "platform-validator.toml", "inspector-handheld.toml"])
def test_example_configs_load(name):
    config = load_config(DEPLOY / "configs" / name)
    assert config.server is not None and config.server.base_url.startswith("https://")
    assert config.reader.kind == "serial"


def test_a_config_mistake_names_the_field(tmp_path):
    bad = tmp_path / "agent.toml"
    bad.write_text('device_id = "x"\ndb = "c.db"\nmode = "validate"\n[reader]\nkind = "serial"\n')
    with pytest.raises(ConfigError, match="mode"):
        load_config(bad)


def test_sample_gtfs_has_zones_for_every_stop_area():
    areas = load_stops(SAMPLE_STOPS)
    assert {a.zone_id for a in areas} == {"A", "B", "C"}
    assert "CEN-1" not in {a.stop_area_id for a in areas}  # platforms fold into their station


@pytest.mark.parametrize("unit", ["mtb-agent.service", "mtb-server.service"])
def test_units_are_hardened(unit):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(SYSTEMD / unit)
    service = parser["Service"]
    assert service["Restart"] == "always"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["User"] not in ("root", "")
    if unit == "mtb-agent.service":
        assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
