"""The operator's command line: keys, mint, device-sign, decode, verify, as written in the README."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import mtb
from agent.cli import main

from .conftest import VECTORS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def issuer(tmp_path, capsys):
    code, out, _ = run(capsys, "keys", "issuer", "--pid", "1234", "--name", "k1", "--out", str(tmp_path))
    assert code == 0
    made = json.loads(out)
    assert made["kid"] == "1234:k1"
    assert oct(os.stat(made["privateKey"]).st_mode & 0o777) == "0o600"
    return made


def mint(capsys, issuer, *extra: str) -> str:
    code, out, err = run(capsys, "mtb", "mint", "--key", issuer["privateKey"], "--pid", "1234", "--kid", "1234:k1",
                         "--ticket-id", "T1", "--valid-from", "20260101T000000Z",
                         "--valid-until", "2026-01-02T00:00:00Z", *extra)
    assert code == 0, err
    return out.strip()


def write(tmp_path: Path, name: str, data: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def test_keys_issuer_writes_metadata_with_public_jwk(issuer):
    [participant] = json.loads(Path(issuer["participantMetadata"]).read_text())
    assert participant["pid"] == 1234
    [jwk] = participant["mtbPublicKeys"]
    assert (jwk["kid"], jwk["kty"], jwk["crv"]) == ("1234:k1", "EC", "P-256")
    assert "d" not in jwk


def test_mint_decode_verify(tmp_path, capsys, issuer):
    text = mint(capsys, issuer, "--zone", "A", "--zone", "B", "--mode", "bus", "--traveller-id", "trav-1",
                "--category", "adult", "--product-id", "P1", "--nbf", "20260101T000000Z", "--compress")
    assert mtb.decode(text).transport == "zlib+base64url"
    code, out, _ = run(capsys, "mtb", "decode", write(tmp_path, "t.txt", text + "\n"))
    decoded = json.loads(out)
    assert code == 0
    assert decoded["transport"] == "zlib+base64url"
    assert decoded["issuerHeader"]["kid"] == "1234:k1"
    [t] = decoded["tickets"]
    assert (t["ticketId"], t["zones"], t["modes"], t["travellerId"]) == ("T1", ["A", "B"], ["bus"], "trav-1")
    assert t["validUntil"] == "20260102T000000Z"
    code, out, _ = run(capsys, "mtb", "verify", write(tmp_path, "t.txt", text), "--metadata",
                       issuer["participantMetadata"])
    assert json.loads(out) == {"issuerSignature": "valid", "deviceSignature": "absent", "eventResult": 0,
                               "reason": "signatures valid"}


def test_binary_file_input(tmp_path, capsys, issuer):
    raw = mtb.b64url_decode(mint(capsys, issuer))
    code, out, _ = run(capsys, "mtb", "decode", write(tmp_path, "t.bin", zlib.compress(raw)))
    assert code == 0 and json.loads(out)["transport"] == "zlib"


def test_device_sign_with_kdk_and_verify(tmp_path, capsys, issuer):
    text = mint(capsys, issuer, "--bind-device", "phone-1", "--dsp", "1234")
    kdk = write(tmp_path, "kdk", mtb.b64url_encode(b"K" * 32) + "\n")
    code, signed, err = run(capsys, "mtb", "device-sign", text, "--did", "phone-1", "--kid", "kdk-1",
                            "--kdk-file", kdk, "--at", "2026-01-01T10:00:00Z", "--compress")
    assert code == 0, err
    path = write(tmp_path, "s.txt", signed)
    code, out, _ = run(capsys, "mtb", "verify", path, "--metadata", issuer["participantMetadata"],
                       "--kdk-file", f"kdk-1={kdk}")
    assert json.loads(out)["deviceSignature"] == "valid" and json.loads(out)["eventResult"] == 0
    code, out, _ = run(capsys, "mtb", "verify", path, "--metadata", issuer["participantMetadata"],
                       "--kdk-file", f"kdk-1={write(tmp_path, 'other', mtb.b64url_encode(b'Q' * 32))}")
    assert (json.loads(out)["deviceSignature"], json.loads(out)["eventResult"]) == ("invalid", 6)
    code, out, _ = run(capsys, "mtb", "verify", path, "--metadata", issuer["participantMetadata"])
    assert (json.loads(out)["deviceSignature"], json.loads(out)["eventResult"]) == ("unknown-key", 6)
    # stripped of its device layer, the bound MTB fails the device header conditions
    code, out, _ = run(capsys, "mtb", "verify", write(tmp_path, "i.txt", text), "--metadata",
                       issuer["participantMetadata"])
    assert (json.loads(out)["deviceSignature"], json.loads(out)["eventResult"]) == ("absent", 4)


def test_vectors_through_the_cli(tmp_path, capsys):
    metadata = str(VECTORS / "participant-metadata-pid10.json")
    entur = write(tmp_path, "entur.bin", bytes.fromhex((VECTORS / "entur-card-mtb.hex").read_text().strip()))
    code, out, _ = run(capsys, "mtb", "verify", entur, "--metadata", metadata)
    assert json.loads(out)["issuerSignature"] == "valid"
    code, out, _ = run(capsys, "mtb", "verify", str(VECTORS / "pid60-device-signed.zlib.b64u"), "--metadata",
                       metadata, "--device-key-file", write(tmp_path, "device-key", "MTIzNA"))
    result = json.loads(out)
    assert (result["issuerSignature"], result["deviceSignature"], result["eventResult"]) == ("unknown-key", "valid", 5)


BAD_INPUTS = {
    "truncated": b"\xa2\x61v\x41",
    "bad-base64": b"@@@@",
    "bomb": zlib.compress(b"\0" * (1 << 20)),
    "oversize": os.urandom(10 * 1024 * 1024),
    "random": os.urandom(300),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_one_line_and_result_1(tmp_path, name):
    """Through a real process: one line on stderr, exit 1, no traceback; verify says 1, that the
    signatures were not checked (not "invalid"), and exits 1: the input does not verify."""
    path = write(tmp_path, name, BAD_INPUTS[name])
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    decode = subprocess.run([sys.executable, "-m", "agent", "mtb", "decode", path], capture_output=True,
                            text=True, env=env, timeout=60)
    assert decode.returncode == 1
    assert decode.stderr.startswith("error: ") and decode.stderr.count("\n") == 1, decode.stderr
    verify = subprocess.run([sys.executable, "-m", "agent", "mtb", "verify", "-", "--metadata",
                             str(VECTORS / "participant-metadata-pid10.json")], input=BAD_INPUTS[name],
                            capture_output=True, env=env, timeout=60)
    assert verify.returncode == 1, verify.stderr
    result = json.loads(verify.stdout)
    assert result["eventResult"] == 1 and "not an MTB, signatures not checked" in result["reason"]
    assert result["issuerSignature"] == result["deviceSignature"] == "not checked"


def test_missing_file_is_a_usage_error(capsys):
    code, _, err = run(capsys, "mtb", "decode", "/nonexistent/mtb")
    assert code == 1 and err.startswith("error: cannot read")


@pytest.mark.parametrize("argv", [
    ["status", "--db", "README.md"],  # not a database
    ["cache", "import-metadata", "{bad}"],  # a metadata file whose key is a list, not a JWK
])
def test_operator_mistakes_are_one_line(tmp_path, capsys, argv):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"pid": 1, "mtbPublicKeys": [[1]], "authtokenPublicKeys": {"x": 1}}]')
    argv = [a.format(bad=bad, vector=VECTORS / "pid60-issuer-mtb.b64u") for a in argv]
    if argv[0] == "cache":
        argv += ["--db", str(tmp_path / "c.db")]
    os.chdir(Path(__file__).parents[1])
    code, _, err = run(capsys, *argv)
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err


def test_verify_with_a_broken_key_skips_it(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"pid": 60, "mtbPublicKeys": [[1], {"kid": 5}], "authtokenPublicKeys": {"x": 1}}]')
    code, out, _ = run(capsys, "mtb", "verify", str(VECTORS / "pid60-issuer-mtb.b64u"), "--metadata", str(bad))
    assert code == 1 and json.loads(out)["issuerSignature"] == "unknown-key"  # does not verify: exit 1


def test_keys_are_never_overwritten(tmp_path, capsys, issuer):
    code, _, err = run(capsys, "keys", "issuer", "--pid", "1234", "--name", "k1", "--out", str(tmp_path))
    assert code == 1 and "exists" in err
