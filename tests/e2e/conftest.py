"""End-to-end fixtures: the bundled server as a real process on 127.0.0.1 (so a test can stop
and restart it on the same port), agents built from real configs, real HTTP for the back office."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.config import AgentConfig
from agent.runtime import Agent, build_agent, close_agent
from hardware import SimulatedFeedback, SimulatedReader

from ..server.conftest import PASSWORD, Api, Deployment, make_data_dir

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m server`` in a subprocess: stop() is a real outage, start() a real restart.
    ``args`` are more ``serve`` options (e.g. ``--tls-cert``); ``probe`` is the TLS context that
    checks it came up (HTTPS then); ``log_file`` takes its log (``--access-log`` lines)."""

    def __init__(self, data_dir: Path, *, args: Sequence[str] = (), probe: ssl.SSLContext | None = None,
                 log_file: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.args = list(args)
        self.probe = probe
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"{'https' if self.probe else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.log_file, "ab") if self.log_file else subprocess.PIPE  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen([sys.executable, "-m", "server", "--data", str(self.data_dir), "--host",
                                         "127.0.0.1", "--port", str(self.port), *self.args], env=env,
                                        stdout=subprocess.DEVNULL, stderr=log)
        if self.log_file:
            log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.origin}/api/v1/openapi.json", timeout=1, context=self.probe):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self._log_tail()}")
                time.sleep(0.05)
        raise RuntimeError("server did not come up")

    def _log_tail(self) -> str:
        if self.log_file:
            return self.log_file.read_text(errors="replace")[-2000:]
        return self.process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Any:
    data = make_data_dir(tmp_path / "server", rate_limit={"requests": 100_000, "window_seconds": 60,
                                                          "block_seconds": 1, "roles": {}})
    process = ServerProcess(data).start()
    yield process
    process.stop()


@pytest.fixture
async def backoffice(server: ServerProcess) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Api(Deployment(server.data_dir, server), session)  # type: ignore[arg-type]


def device_config(tmp_path: Path, base_url: str, *, device_id: str = "bus-1", entity: str = "val1",
                  mode: str = "validation", sync: dict[str, Any] | None = None, **extra: Any) -> AgentConfig:
    """An agent's config; ``sync`` overrides keys of its ``[server]`` section."""
    credentials = tmp_path / f"{device_id}.credentials"
    credentials.write_text(f"{entity}:{PASSWORD}\n")
    credentials.chmod(0o600)
    return AgentConfig.model_validate({
        "device_id": device_id, "mode": mode, "db": str(tmp_path / f"{device_id}.db"), "operator_pid": 1234,
        "mode_of_transport": "bus", "durability": "normal", "reader": {"kind": "simulated"},
        "feedback": {"kind": "simulated"},
        "server": {"production_url": base_url + "/api/v1", "credentials_file": str(credentials),
                   "upload_interval_s": 0.05, "feeds_interval_s": 0.2, "allow_insecure_http": True,
                   "max_requests_per_minute": 100_000, **(sync or {})},
        **extra})


@pytest.fixture
async def make_agent(tmp_path: Path) -> Any:
    agents: list[Agent] = []

    def make(base_url: str, **kw: Any) -> Agent:
        agent = build_agent(device_config(tmp_path, base_url, **kw), reader=SimulatedReader(),
                            feedback=SimulatedFeedback())
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await close_agent(agent)
