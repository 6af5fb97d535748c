"""TLS on the link (issue 10.5): ``python -m server serve --tls-cert/--tls-key[/--tls-client-ca]``
with a CA made in the test, and the agent syncing over it: with the CA configured, with and
without a client certificate when the server wants one, and with a wrong key pin (refused in
the handshake, before a byte of the request; an alarm)."""
from __future__ import annotations

import hashlib
import ipaddress
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.config import AgentConfig
from agent.runtime import build_agent, close_agent
from agent.sync import TlsRefused, Transient
from hardware import SimulatedFeedback, SimulatedReader
from mtb.timeutil import utcnow

from ..server.conftest import PASSWORD, make_data_dir
from .conftest import ServerProcess


class FleetCa:
    """A CA and the certificates it issues, as PEM files in ``directory``."""

    def __init__(self, directory: Path, name: str = "Test fleet CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (self._builder(subject, self.key.public_key(), subject)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = self._write(f"{name.replace(' ', '-')}.pem", self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: Any, issuer: x509.Name) -> x509.CertificateBuilder:
        now = utcnow()
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2)))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path, x509.Certificate]:
        """(certificate PEM, key PEM, certificate) for 127.0.0.1 (server) or a device (client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(),
                                self.cert.subject)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return (self._write(f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{name}.key", key_pem), cert)


def spki_pin(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@pytest.fixture
def tls_server(tmp_path: Path):
    """``tls_server(client_ca=False)`` -> (server, CA, server certificate); stopped at the end."""
    started: list[ServerProcess] = []
    ca = FleetCa(tmp_path)

    def start(client_ca: bool = False) -> tuple[ServerProcess, FleetCa, x509.Certificate]:
        cert, key, certificate = ca.issue(f"server{len(started)}", server=True)
        probe = ssl.create_default_context(cafile=str(ca.pem))
        args = ["--tls-cert", str(cert), "--tls-key", str(key), "--access-log"]
        if client_ca:
            args += ["--tls-client-ca", str(ca.pem)]
            probe_cert, probe_key, _ = ca.issue(f"probe{len(started)}", server=False)
            probe.load_cert_chain(probe_cert, probe_key)
        data = make_data_dir(tmp_path / f"data{len(started)}",
                             rate_limit={"requests": 100_000, "window_seconds": 60, "block_seconds": 1, "roles": {}})
        server = ServerProcess(data, args=args, probe=probe, log_file=tmp_path / f"server{len(started)}.log")
        started.append(server.start())
        return server, ca, certificate

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def tls_agent(tmp_path: Path):
    """``tls_agent(server, **server_section)``: a real agent syncing with ``server``."""
    agents = []

    def make(server: ServerProcess, **section: Any) -> Any:
        credentials = tmp_path / "credentials"
        credentials.write_text(f"val1:{PASSWORD}\n")
        credentials.chmod(0o600)
        config = AgentConfig.model_validate({
            "device_id": "bus-tls", "db": str(tmp_path / f"device{len(agents)}.db"), "durability": "normal",
            "reader": {"kind": "simulated"}, "feedback": {"kind": "simulated"},
            "server": {"production_url": server.origin + "/api/v1", "credentials_file": str(credentials),
                       **{k: str(v) if isinstance(v, Path) else v for k, v in section.items()}}})
        agents.append(build_agent(config, reader=SimulatedReader(), feedback=SimulatedFeedback()))
        return agents[-1]

    yield make
    for agent in agents:
        await close_agent(agent)


async def test_the_agent_syncs_over_tls_with_a_private_ca_and_the_right_pin(tls_server, tls_agent):
    server, ca, certificate = tls_server()
    agent = tls_agent(server, ca_file=ca.pem, pin_sha256=spki_pin(certificate))
    await agent.syncer.sync_once()
    cache = agent.engine.cache
    assert cache.keystore().issuer_keys and cache.keystore().kdks
    decision = await agent.handle_scan(b"not a ticket")
    assert decision is not None and decision.event_result == 1
    assert await agent.syncer.upload_pending() == 1 and cache.outbox_count() == 0
    assert not cache.alarms()


async def test_without_the_private_ca_the_server_is_not_trusted(tls_server, tls_agent):
    server, _, _ = tls_server()
    agent = tls_agent(server)  # the system's CAs only
    with pytest.raises(TlsRefused, match="certificate verify failed"):
        await agent.syncer.sync_once()
    assert "sync-tls" in agent.engine.cache.alarms()


async def test_a_wrong_pin_is_refused_before_anything_is_sent_and_raises_an_alarm(tls_server, tls_agent, capsys):
    server, ca, _ = tls_server()
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    wrong = hashlib.sha256(other_key.public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    agent = tls_agent(server, ca_file=ca.pem, pin_sha256=wrong)
    with pytest.raises(TlsRefused, match="pin_sha256"):
        await agent.syncer.sync_once()
    assert not agent.engine.cache.keystore().issuer_keys
    alarm = agent.engine.cache.alarms()["sync-tls"]
    assert "pin_sha256" in alarm["text"] and alarm["until"]
    log = server.log_file.read_text()
    assert "/api/v1/auth/val1" not in log  # the credentials never left the device
    assert "/api/v1/openapi.json" in log  # (the log does show requests: the start-up probe's)


async def test_mutual_tls_wants_the_device_certificate(tls_server, tls_agent, tmp_path):
    server, ca, _ = tls_server(client_ca=True)
    without = tls_agent(server, ca_file=ca.pem)
    # TLS 1.3: the server refuses the missing certificate after the client's half of the
    # handshake, so the device sees the connection dropped; it gets nothing and says why.
    with pytest.raises((TlsRefused, Transient), match="client_cert"):
        await without.syncer.feed("kdks").run()
    assert not without.engine.cache.keystore().kdks
    assert "/api/v1/auth/val1" not in server.log_file.read_text()  # no request reached the server
    cert, key, _ = ca.issue("bus-tls", server=False)
    device = tls_agent(server, ca_file=ca.pem, client_cert=cert, client_key=key)
    await device.syncer.sync_once()
    assert device.engine.cache.keystore().kdks and not device.engine.cache.alarms()
    assert "/api/v1/auth/val1" in server.log_file.read_text()
