"""BoB's login by TLS client certificate, over real TLS on 127.0.0.1, with a test CA made here
(cryptography's x509): a certificate whose subject names the entity, or is bound to it, gets a
token; an unknown entity is a 404 and another's a 403 (the caller is known by its certificate);
no certificate is a 401 unless HTTP Basic is given; a certificate the CA did not issue never
gets past the TLS handshake."""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server import cli, jws
from server.app import app_from_data_dir
from server.thread import ServerThread
from server.tls import server_ssl_context

from .conftest import PASSWORD, PID, Deployment, make_data_dir

SHARED = "CN=shared-device,O=Test Transit"


def _name(subject: str) -> x509.Name:
    return x509.Name.from_rfc4514_string(subject)


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
           *, ca: bool = False, ip: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                                        critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class Pki:
    directory: Path
    ca_file: Path

    def write(self, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file


def make_pki(directory: Path) -> tuple[Pki, dict[str, tuple[Path, Path]]]:
    """A test CA; the server's certificate for 127.0.0.1; client certificates by name."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("CN=Test fleet CA,O=Test Transit")
    ca = _issue("CN=Test fleet CA,O=Test Transit", ca_key, ca_name, ca_key, ca=True)
    pki = Pki(directory, directory / "ca.crt")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files = {}
    for name, subject in (("server", "CN=127.0.0.1"), ("val1", "CN=val1,O=Test Transit"), ("shared", SHARED),
                          ("bound-one", "CN=bound-one"), ("stranger", "CN=stranger")):
        key = ec.generate_private_key(ec.SECP256R1())
        files[name] = pki.write(name, _issue(subject, key, ca_name, ca_key, ip="127.0.0.1" if name == "server" else None),
                                key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())  # self-signed, names val1: not from the CA
    files["rogue"] = pki.write("rogue", _issue("CN=val1", rogue_key, _name("CN=val1"), rogue_key), rogue_key)
    return pki, files


@dataclass
class TlsServer:
    deployment: Deployment
    pki: Pki
    files: dict[str, tuple[Path, Path]]

    def client_context(self, cert: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        if cert is not None:
            context.load_cert_chain(*self.files[cert])
        return context

    async def get(self, path: str, cert: str | None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        connector = aiohttp.TCPConnector(ssl=self.client_context(cert))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(self.deployment.url(path), headers=headers or {}) as reply:
                return reply.status, await reply.json(content_type=None)


def start_tls(tmp_path: Path, *, required: bool) -> Iterator[TlsServer]:
    data_dir = make_data_dir(tmp_path / "data")
    pki, files = make_pki(tmp_path)
    for entity, role in (("ins-cert", "ins"), ("pos-cert", "pos")):  # one subject, two entities
        assert cli.add_credential(data_dir, entity, role, cert_subject=SHARED) is None
    cli.add_credential(data_dir, "bound-one", "val", cert_subject="CN=someone-else")
    context = server_ssl_context(*files["server"], pki.ca_file, client_cert_required=required)
    server = ServerThread(app_from_data_dir(data_dir), ssl_context=context).start()
    try:
        yield TlsServer(Deployment(data_dir, server), pki, files)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    yield from start_tls(tmp_path_factory.mktemp("tls-optional"), required=False)


async def test_a_certificate_naming_the_entity_gets_a_token_with_its_header_and_payload(tls):
    status, body = await tls.get("/auth/val1", "val1")
    assert status == 200, body
    header, claims, _, _ = jws.unverified(body["jwtCompact"])
    assert body["header"] == header and body["payload"] == claims
    assert header["alg"] == "ES256" and header["kid"] == f"{PID}:auth-1"
    assert claims["sub"] == "val1" and claims["bobAuthZ"] == "val" and claims["iss"] == str(PID)
    status, entries = await tls.get("/blacklist", None, {"X-BoB-AuthToken": body["jwtCompact"]})
    assert status == 200 and isinstance(entries, list)


async def test_a_verified_caller_learns_unknown_404_and_not_yours_403(tls):
    status, body = await tls.get("/auth/no-such-entity", "val1")
    assert status == 404 and body["code"] == "unknown_entity"
    status, body = await tls.get("/auth/val2", "val1")  # exists, but the certificate names val1
    assert status == 403 and body["code"] == "certificate_not_allowed"
    status, body = await tls.get("/auth/no-such-entity", "stranger")
    assert status == 404


async def test_one_bound_subject_acts_as_several_entities_and_only_as_those(tls):
    for entity, role in (("ins-cert", "ins"), ("pos-cert", "pos")):
        status, body = await tls.get(f"/auth/{entity}", "shared")
        assert status == 200 and body["payload"]["sub"] == entity and body["payload"]["bobAuthZ"] == role
    assert (await tls.get("/auth/val1", "shared"))[0] == 403
    # a binding replaces the common-name rule: CN=bound-one is not the subject bound to bound-one
    assert (await tls.get("/auth/bound-one", "bound-one"))[0] == 403
    # and a certificate-only credential has no password to guess
    basic = {"Authorization": tls.deployment.basic("pos-cert", "")}
    assert (await tls.get("/auth/pos-cert", None, basic))[0] == 401


async def test_without_a_certificate_basic_or_401(tls):
    status, body = await tls.get("/auth/val1", None)
    assert status == 401 and body["code"] == "missing_credentials"
    status, body = await tls.get("/auth/val1", None, {"Authorization": tls.deployment.basic("val1")})
    assert status == 200 and body["payload"]["sub"] == "val1"
    # an Authorization header is the caller's choice of login, certificate or not
    status, _ = await tls.get("/auth/val1", "val1", {"Authorization": tls.deployment.basic("val1", "wrong")})
    assert status == 401
    status, _ = await tls.get("/auth/no-such-entity", None, {"Authorization": tls.deployment.basic("no-such-entity")})
    assert status == 401  # Basic never tells an unknown entity from a wrong password


async def test_a_certificate_the_ca_did_not_issue_is_refused_in_the_handshake(tls):
    with pytest.raises(aiohttp.ClientError):
        await tls.get("/auth/val1", "rogue")
    assert (await tls.get("/auth/val1", "val1"))[0] == 200  # and the server goes on


async def test_required_client_certificates_refuse_a_client_without_one(tmp_path):
    for server in start_tls(tmp_path, required=True):
        with pytest.raises(aiohttp.ClientError):
            await server.get("/auth/val1", None, {"Authorization": server.deployment.basic("val1")})
        assert (await server.get("/auth/val1", "val1"))[0] == 200


def test_cert_subjects_are_checked_and_kept_in_canonical_form(tmp_path):
    data_dir = make_data_dir(tmp_path / "data")
    assert cli.add_credential(data_dir, "dev-1", "val", cert_subject="CN=dev-1, O=Test Transit") is None
    assert cli.add_credential(data_dir, "dev-2", "val", PASSWORD, cert_subject="CN=dev-1,O=Test Transit") == PASSWORD
    with cli.opened_store(data_dir) as store:
        assert store.get_credential("dev-1").cert_subject == "CN=dev-1,O=Test Transit"
        assert store.get_credential("dev-2").cert_subject == "CN=dev-1,O=Test Transit"
    for bad in ("not a subject", ""):
        with pytest.raises(cli.UsageError):
            cli.add_credential(data_dir, "dev-3", "val", cert_subject=bad)
