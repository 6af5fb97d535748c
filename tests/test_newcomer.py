"""What a newcomer tripped on (issue 10.5-10.7): secrets only from files, an installed package
that simulates, a `validate` that decides as the device does, one-line mistakes, zoned times,
a `verify` whose exit status says whether the MTB verifies, hex input, `--version`, help texts."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mtb
from agent.cli import build_parser, main
from agent.stops import SAMPLE_STOPS

from .conftest import VECTORS

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        import io

        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def cli(*argv: str, module: str = "agent", cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env or dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.fixture()
def issuer(tmp_path, capsys):
    code, out, _ = run(capsys, "keys", "issuer", "--pid", "1234", "--name", "k1", "--out", str(tmp_path / "keys"))
    assert code == 0
    return json.loads(out)


def mint(capsys, issuer, *extra: str, kid: str = "1234:k1", valid=("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
         **kw) -> tuple[int, str, str]:
    return run(capsys, "mtb", "mint", "--key", issuer["privateKey"], "--pid", "1234", "--kid", kid, "--ticket-id",
               "T1", "--valid-from", valid[0], "--valid-until", valid[1], *extra, **kw)


# --- 10.5: no secret on the command line ----------------------------------------------------------

def every_option(parser: argparse.ArgumentParser, path: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_option(sub, f"{path} {name}")
        else:
            yield path.strip(), action


def test_no_flag_of_the_agent_takes_a_key_or_password_as_its_value():
    offenders = [(command, option) for command, action in every_option(build_parser())
                 if action.nargs != 0 and action.help != argparse.SUPPRESS  # takes a value; not a refusal
                 for option in action.option_strings
                 if any(word in option for word in ("kdk", "key", "password", "secret"))
                 and not option.endswith("-file") and (command, option) != ("mtb mint", "--key")]  # a PEM file
    assert offenders == []


@pytest.mark.parametrize("argv, use", [
    (["mtb", "device-sign", "X", "--did", "d", "--kid", "k", "--kdk", "S2Vr"], "--kdk-file"),
    (["mtb", "device-sign", "X", "--did", "d", "--kid", "k", "--device-key", "S2Vr"], "--device-key-file"),
    (["mtb", "verify", "X", "--metadata", "m", "--kdk", "k=S2Vr"], "--kdk-file"),
    (["cache", "add-kdk", "--kid", "k", "--key", "S2Vr"], "--key-file"),
])
def test_the_old_secret_flags_are_refused_with_the_one_to_use(capsys, argv, use):
    code, _, err = run(capsys, *argv)
    assert code == 2 and "keys are not taken on the command line (visible in ps)" in err and use in err


def test_a_kdk_from_standard_input_signs_and_a_kdk_file_verifies(tmp_path, capsys, monkeypatch, issuer):
    _, text, _ = mint(capsys, issuer, "--bind-device", "phone-1", "--dsp", "1234")
    kdk = mtb.b64url_encode(b"K" * 32)
    code, signed, err = run(capsys, "mtb", "device-sign", text.strip(), "--did", "phone-1", "--kid", "kdk-1",
                            "--kdk-file", "-", "--at", "2026-01-01T10:00:00Z", stdin=kdk + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    (tmp_path / "signed").write_text(signed)
    (tmp_path / "kdk").write_text(kdk)
    code, out, _ = run(capsys, "mtb", "verify", str(tmp_path / "signed"), "--metadata", issuer["participantMetadata"],
                       "--kdk-file", f"kdk-1={tmp_path / 'kdk'}")
    assert code == 0 and json.loads(out)["deviceSignature"] == "valid"
    db = str(tmp_path / "c.db")
    code, _, err = run(capsys, "cache", "add-kdk", "--kid", "kdk-1", "--key-file", str(tmp_path / "kdk"), "--db", db)
    assert code == 0, err


# --- 10.6: an installed package simulates ---------------------------------------------------------

def test_the_sample_gtfs_ships_in_the_package_and_simulate_runs_outside_the_checkout(tmp_path):
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                            "--target", str(target), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    assert (target / "agent" / "sample" / "stops.txt").read_bytes() == SAMPLE_STOPS.read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-c", "import agent, server; print(agent.__file__, server.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60)
    assert where.stdout.split() == [str(target / "agent" / "__init__.py"), str(target / "server" / "__init__.py")]
    done = cli("simulate", cwd=elsewhere, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "simulation: OK" in done.stdout


# --- 10.6: validate decides as the device does ----------------------------------------------------

@pytest.fixture()
def zone_a(tmp_path, capsys, issuer):
    """A cache with the sample stops and the issuer's keys, and a zone-A ticket valid all of 2026."""
    db = str(tmp_path / "c.db")
    assert run(capsys, "cache", "import-metadata", issuer["participantMetadata"], "--db", db)[0] == 0
    assert run(capsys, "cache", "import-stops", str(SAMPLE_STOPS), "--db", db)[0] == 0
    _, text, _ = mint(capsys, issuer, "--zone", "A", valid=("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"))
    ticket = tmp_path / "t.txt"
    ticket.write_text(text)
    return db, str(ticket)


def validate(capsys, zone_a, *argv: str) -> tuple[int, dict | None, str]:
    db, ticket = zone_a
    code, out, err = run(capsys, "validate", ticket, "--db", db, "--at", "2026-03-02T08:30:00Z", *argv)
    return code, json.loads(out) if code == 0 else None, err


def test_validate_takes_the_zone_of_a_stop_area_from_the_cache(capsys, zone_a):
    code, decision, _ = validate(capsys, zone_a, "--stop-area", "UNI", "--operator-pid", "1234")
    assert decision["eventResult"] == 2 and "zone B not covered" in decision["eventReason"]
    assert decision["events"][0]["stopArea"] == {"pid": 1234, "stopAreaId": "UNI"}
    assert decision["events"][0]["zone"] == {"pid": 1234, "zoneId": "B"}
    code, decision, _ = validate(capsys, zone_a, "--stop-area", "ODP", "--operator-pid", "1234")
    assert decision["eventResult"] == 0


def test_validate_takes_the_stop_area_and_zone_of_a_position(capsys, zone_a):
    code, decision, _ = validate(capsys, zone_a, "--lat", "59.3654", "--long", "18.0550", "--operator-pid", "1234")
    assert decision["eventResult"] == 2
    assert decision["events"][0]["stopArea"]["stopAreaId"] == "UNI" and decision["events"][0]["geo"]["lat"] == 59.3654


def test_validate_refuses_an_unknown_stop_area_and_a_stop_area_it_cannot_keep(capsys, zone_a):
    code, _, err = validate(capsys, zone_a, "--stop-area", "NOWHERE", "--operator-pid", "1234")
    assert code == 1 and err.startswith("error: stop area 'NOWHERE' is not in the cache") and "import-stops" in err
    code, _, err = validate(capsys, zone_a, "--stop-area", "UNI")
    assert code == 1 and "--operator-pid is needed" in err
    code, _, err = validate(capsys, zone_a, "--stop-area", "UNI", "--zone", "A", "--operator-pid", "1234")
    assert code == 1 and "--zone A contradicts stop area UNI (zone B" in err


# --- 10.6: mistakes are one line ------------------------------------------------------------------

def test_an_unknown_reader_option_is_one_line_naming_the_key(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "gate-1"\ndb = "{tmp_path / "c.db"}"\n[reader]\nkind = "serial"\n'
                      'url = "loop://"\nbaud = 9600\n')
    done = cli("run", "--config", str(config))
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: config [reader] (kind 'serial'): ") and "'baud'" in done.stderr
    assert not (tmp_path / "c.db").exists()


def test_mint_refuses_a_validity_that_ends_before_it_starts(capsys, issuer):
    code, _, err = mint(capsys, issuer, valid=("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"))
    assert code == 1 and err == ("error: --valid-until 20260101T000000Z is not after --valid-from "
                                 "20260102T000000Z\n")


def test_mint_refuses_a_kid_that_does_not_name_the_key(capsys, issuer, tmp_path):
    code, _, err = mint(capsys, issuer, kid="1234:k2")
    assert code == 1 and "--kid 1234:k2 does not name this key for pid 1234" in err
    assert "this key is listed as 1234:k1" in err
    other = json.loads(run(capsys, "keys", "issuer", "--pid", "1234", "--name", "k2", "--out",
                           str(tmp_path / "keys"))[1])
    code, _, err = mint(capsys, issuer, kid=other["kid"])  # listed, but for the other key
    assert code == 1 and "does not name this key" in err
    assert mint(capsys, issuer)[0] == 0


def test_deny_with_an_expiry_in_the_past_says_it_lifts_an_entry(capsys, tmp_path):
    db = str(tmp_path / "c.db")
    code, out, err = run(capsys, "cache", "deny", "--ticket-id", "T1", "--expire", "2020-01-01T00:00:00Z", "--db", db)
    assert code == 0 and json.loads(out)["inForce"] is False
    assert "this lifts any deny entry for ticket T1; it denies nothing" in err
    code, out, err = run(capsys, "cache", "deny", "--ticket-id", "T1", "--expire", "2099-01-01T00:00:00Z", "--db", db)
    assert json.loads(out)["inForce"] is True and err == ""


@pytest.mark.parametrize("at", ["2026-01-01T12:00:00", "2026-01-01", "20260101T120000"])
def test_times_without_a_zone_are_refused(capsys, zone_a, at):
    db, ticket = zone_a
    code, _, err = run(capsys, "validate", ticket, "--db", db, "--at", at)
    assert code == 2 and "time without a zone" in err and "2026-01-01T12:00:00Z" in err


# --- 10.6 and 10.7: verify, decode, hex, versions, help -------------------------------------------

def test_verify_exits_0_only_when_the_mtb_verifies(tmp_path, capsys, issuer):
    _, text, _ = mint(capsys, issuer)
    (tmp_path / "t.txt").write_text(text)
    assert run(capsys, "mtb", "verify", str(tmp_path / "t.txt"), "--metadata", issuer["participantMetadata"])[0] == 0
    other = run(capsys, "keys", "issuer", "--pid", "1234", "--name", "k1", "--out", str(tmp_path / "elsewhere"))[1]
    code, out, _ = run(capsys, "mtb", "verify", str(tmp_path / "t.txt"), "--metadata",
                       json.loads(other)["participantMetadata"])
    assert code == 1 and json.loads(out)["issuerSignature"] == "invalid"


@pytest.mark.parametrize("spelling", ["plain", "spaced", "colons", "flag"])
def test_decode_and_verify_take_hex_text(capsys, tmp_path, spelling):
    text = (VECTORS / "entur-card-mtb.hex").read_text().strip()
    pairs = [text[i:i + 2] for i in range(0, len(text), 2)]
    given = {"plain": text, "spaced": " ".join(pairs), "colons": ":".join(pairs).lower(), "flag": text}[spelling]
    flag = ["--hex"] if spelling == "flag" else []
    code, out, err = run(capsys, "mtb", "decode", str(write_tmp(tmp_path, given)), *flag)
    assert code == 0, err
    assert json.loads(out)["issuerHeader"]["kid"] == "10:20230213"
    code, out, _ = run(capsys, "mtb", "verify", str(write_tmp(tmp_path, given)), *flag, "--metadata",
                       str(VECTORS / "participant-metadata-pid10.json"))
    assert json.loads(out)["issuerSignature"] == "valid"


def write_tmp(directory: Path, text: str) -> Path:
    path = directory / f"input-{len(list(directory.iterdir()))}.txt"
    path.write_text(text + "\n")
    return path


def test_a_card_answer_with_its_status_word_is_explained(capsys, tmp_path):
    text = (VECTORS / "entur-card-mtb.hex").read_text().strip() + "9000"
    code, _, err = run(capsys, "mtb", "decode", str(write_tmp(tmp_path, text)))
    assert code == 1 and "ends in 90 00: a card's status word, which the reader adapter strips" in err
    code, _, err = run(capsys, "mtb", "decode", str(write_tmp(tmp_path, "zz")), "--hex")
    assert code == 1 and err == "error: --hex: the input is not hex text (pairs of 0-9, A-F)\n"


def test_both_clis_say_their_version():
    for module in ("agent", "server"):
        done = cli("--version", module=module)
        assert done.returncode == 0 and done.stdout.strip() == f"python -m {module} {mtb.__version__}"


def test_every_flag_of_the_agent_has_a_help_text():
    missing = [(command, action.option_strings or action.dest) for command, action in every_option(build_parser())
               if action.help is None and not isinstance(action, argparse._HelpAction)]
    assert missing == []
