"""The device side of the link: its ``[server]`` TLS settings, a device that never synced, and
the log format (issues 10.5 and 10.6)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agent.config import AgentConfig, ConfigError, load_config
from agent.logs import configure_logging
from agent.runtime import OUT_OF_SERVICE, build_agent, close_agent
from agent.sync import ServerClient
from hardware import SimulatedFeedback, SimulatedReader

from ..server.conftest import PASSWORD

PIN = "ab" * 32


def write_config(tmp_path: Path, server: str, extra: str = "") -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'device_id = "bus-1"\ndb = "cache.db"\n[reader]\nkind = "simulated"\n'
                    f'[server]\ncredentials_file = "credentials"\n{server}\n{extra}')
    return path


def test_http_is_refused_unless_allowed(tmp_path):
    with pytest.raises(ConfigError, match="production_url is http://"):
        load_config(write_config(tmp_path, 'production_url = "http://tickets.example.org/api/v1"'))
    config = load_config(write_config(tmp_path, 'production_url = "http://127.0.0.1:8080/api/v1"\n'
                                                "allow_insecure_http = true"))
    assert config.server is not None and config.server.allow_insecure_http
    with pytest.raises(ValueError, match="http://"):  # the client refuses it on its own too
        ServerClient("http://127.0.0.1:1/api/v1", "val1", PASSWORD)


def test_plain_http_is_a_warning_at_start(caplog):
    with caplog.at_level(logging.WARNING):
        ServerClient("http://127.0.0.1:1/api/v1", "val1", PASSWORD, allow_insecure_http=True)
    assert any("no TLS" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_tls_settings_are_read_and_checked(tmp_path):
    config = load_config(write_config(
        tmp_path, 'production_url = "https://tickets.example.org/api/v1"\nca_file = "ca.pem"\n'
                  f'client_cert = "device.pem"\nclient_key = "device.key"\npin_sha256 = "{PIN}"'))
    assert config.server is not None
    assert config.server.ca_file == tmp_path / "ca.pem"  # relative to the config file
    assert config.server.client_key == tmp_path / "device.key"
    assert config.server.tls().pins == frozenset({bytes.fromhex(PIN)})
    with pytest.raises(ConfigError, match="client_cert and client_key go together"):
        load_config(write_config(tmp_path, 'production_url = "https://t.example.org"\nclient_cert = "d.pem"'))
    with pytest.raises(ConfigError, match="not a SHA-256 pin"):
        load_config(write_config(tmp_path, 'production_url = "https://t.example.org"\npin_sha256 = "abc"'))
    rollover = load_config(write_config(tmp_path, 'production_url = "https://t.example.org"\n'
                                                  f'pin_sha256 = ["{PIN}", "{"cd" * 32}"]'))
    assert rollover.server is not None and len(rollover.server.tls().pins) == 2


async def test_a_device_that_never_synced_is_out_of_service(tmp_path, caplog):
    """No trust list yet: every ticket would be "not recognised"; the device says it cannot
    serve instead, records why, and raises the alarm once however many passengers try."""
    credentials = tmp_path / "credentials"
    credentials.write_text(f"val1:{PASSWORD}\n")
    credentials.chmod(0o600)
    config = AgentConfig.model_validate({
        "device_id": "bus-1", "db": str(tmp_path / "cache.db"), "durability": "normal",
        "reader": {"kind": "simulated"}, "feedback": {"kind": "simulated"},
        "server": {"production_url": "https://127.0.0.1:9/api/v1", "credentials_file": str(credentials)}})
    agent = build_agent(config, reader=SimulatedReader(), feedback=SimulatedFeedback())
    try:
        caplog.set_level(logging.ERROR)
        for _ in range(3):
            decision = await agent.handle_scan(b"any ticket at all")
            assert decision is not None and decision.event_result == 1
            assert "never synced" in decision.event_reason
            assert agent.feedback.last.text == OUT_OF_SERVICE  # type: ignore[union-attr]
        assert sum("ALARM trust-list" in r.getMessage() for r in caplog.records) == 1
        assert "never synced" in agent.engine.cache.alarms()["trust-list"]["text"]
        assert agent.engine.cache.outbox_count() == 3  # the refusals are recorded, as every scan is
    finally:
        await close_agent(agent)


def test_json_log_format(tmp_path, capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        logging.getLogger("agent.sync").warning("sync %s failing", "kdks")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("agent").exception("scan failed")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "agent.sync"
    assert lines[0]["message"] == "sync kdks failing" and lines[0]["time"].endswith("+00:00")
    assert "RuntimeError: boom" in lines[1]["exception"]
    config = load_config(write_config(tmp_path, 'production_url = "https://t.example.org"', '[logging]\nformat = "json"'))
    assert config.logging.format == "json"
    with pytest.raises(ConfigError, match="logging.format"):
        load_config(write_config(tmp_path, 'production_url = "https://t.example.org"', '[logging]\nformat = "xml"'))


def test_tls_files_that_cannot_be_read_are_named(tmp_path):
    from agent.sync import TlsSettings

    with pytest.raises(ValueError, match="server.ca_file .*missing-ca.pem"):
        TlsSettings(ca_file=tmp_path / "missing-ca.pem").context()
    (tmp_path / "device.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="server.client_cert .*device.pem"):
        TlsSettings(client_cert=tmp_path / "device.pem", client_key=tmp_path / "device.pem").context()
