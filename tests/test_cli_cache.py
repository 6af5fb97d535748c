"""The operator's cache commands, run in-process on a real cache file: add-kdk, deny,
import-stops, validate, outbox list and unpark, status."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

import mtb
from mtb import keys, signer
from agent.cache import Cache
from agent.stops import SAMPLE_STOPS
from agent.cli import main

from .conftest import NOW, ticket

STOPS = SAMPLE_STOPS
KDK = bytes(range(32))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def db(tmp_path, issuer_key, capsys) -> str:
    """A cache made with the CLI: participant metadata from a file, as an operator would."""
    metadata = tmp_path / "participants.json"
    metadata.write_text(json.dumps(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, "1234:k1")])))
    path = str(tmp_path / "device.db")
    code, out, err = run(capsys, "cache", "import-metadata", str(metadata), "--db", path)
    assert (code, json.loads(out)) == (0, {"issuerKeys": 1, "authtokenKeys": 0, "skipped": []}), err
    return path


def scan_file(tmp_path, raw: bytes, name: str = "scan.txt") -> str:
    path = tmp_path / name
    path.write_text(mtb.wrap_transport(raw, "zlib+base64url") + "\n")
    return str(path)


def validate(capsys, db: str, file: str, *extra: str) -> dict:
    code, out, err = run(capsys, "validate", file, "--at", "2026-03-02T08:30:00Z", "--db", db, *extra)
    assert code == 0, err
    return json.loads(out)


def test_add_kdk_lets_the_device_signature_verify(tmp_path, capsys, db, issuer_key):
    issued = signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()], bind_device="phone-1", dsp=1234)
    signed = signer.device_sign(issued, did="phone-1", kid="kdk-7", at=NOW,
                                device_key=keys.derive_device_key(KDK, "phone-1"))
    file = scan_file(tmp_path, signed)
    assert validate(capsys, db, file)["eventResult"] == 6  # the KDK is not known yet
    (tmp_path / "kdk-7").write_text(mtb.b64url_encode(KDK))
    code, out, _ = run(capsys, "cache", "add-kdk", "--kid", "kdk-7", "--key-file", str(tmp_path / "kdk-7"), "--db", db)
    assert (code, json.loads(out)) == (0, {"kid": "kdk-7"})
    assert validate(capsys, db, file, "--validator-id", "gate-2")["eventResult"] == 0
    with Cache(db) as cache:
        assert cache.keystore().kdks == {"kdk-7": KDK}


@pytest.mark.parametrize("flag, value, spec", [
    ("--ticket-id", "T1", {}),
    ("--traveller-id", "trav-9", {"traveller_id": "trav-9"}),
])
def test_deny_blocks_the_ticket_with_7(tmp_path, capsys, db, issuer_key, flag, value, spec):
    file = scan_file(tmp_path, signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket(**spec)]))
    code, out, _ = run(capsys, "cache", "deny", flag, value, "--expire", "2026-04-01T00:00:00Z", "--db", db)
    assert code == 0 and json.loads(out)["value"] == value
    decided = validate(capsys, db, file)
    assert decided["eventResult"] == 7 and decided["eventReason"].endswith(f"{value} is on the deny list")


def test_import_stops_loads_the_gtfs_file(capsys, db):
    code, out, _ = run(capsys, "cache", "import-stops", str(STOPS), "--db", db)
    assert code == 0
    loaded = json.loads(out)
    assert loaded["zones"] == ["A", "B", "C"] and loaded["stopAreas"] > 5
    with Cache(db) as cache:
        areas = {a.stop_area_id: a for a in cache.stop_areas()}
    assert len(areas) == loaded["stopAreas"] and areas["CEN"].zone_id == "A" and "CEN-1" not in areas


def test_a_bad_stops_file_is_one_line(tmp_path, capsys, db):
    bad = tmp_path / "stops.txt"
    bad.write_text("not,a,gtfs\nfile\n")
    code, out, err = run(capsys, "cache", "import-stops", str(bad), "--db", db)
    assert code == 1 and out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_validate_prints_the_decision_and_inspect_lists_every_failure(tmp_path, capsys, db, issuer_key):
    expired = ticket(valid_until=NOW - timedelta(minutes=1), zones=["B"], product_id="P9")
    file = scan_file(tmp_path, signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[expired]))
    decided = validate(capsys, db, file, "--zone", "A", "--operator-pid", "1234", "--inspect")
    assert (decided["eventResult"], decided["passengerMessage"]) == (3, "Ticket not valid at this time")
    [event] = decided["events"]
    assert event["eventType"] == "inspection" and event["zone"] == {"pid": 1234, "zoneId": "A"}
    lines = decided["inspectorMessage"].splitlines()
    assert lines[0].startswith("ticket T1: INVALID (3: ticket expired at") and "product P9" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["  failed time (3)", "  failed spatial (2)"]


def test_validate_refuses_a_half_position(tmp_path, capsys, db, issuer_key):
    file = scan_file(tmp_path, signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket()]))
    code, _, err = run(capsys, "validate", file, "--at", "2026-03-02T08:30:00Z", "--lat", "59.3", "--db", db)
    assert code == 1 and err == "error: --lat and --long go together\n"


def test_outbox_list_and_unpark(tmp_path, capsys, db, issuer_key):
    file = scan_file(tmp_path, signer.mint(issuer_key, pid=1234, kid="1234:k1", tickets=[ticket("T1"), ticket("T2")]))
    decided = validate(capsys, db, file)
    ids = [e["localEventId"] for e in decided["events"]]
    with Cache(db) as cache:
        [first, second] = cache.outbox()
        cache.note_failure([second.seq], "422 from the server: stopArea", park=True)

    code, out, _ = run(capsys, "outbox", "list", "--db", db)
    lines = out.splitlines()
    assert code == 0 and lines[-1] == "2 event(s)"
    assert lines[0].split()[2:6] == ["validation", "0", "T1", "valid"] and not lines[0].endswith("PARKED")
    assert lines[1].split()[4] == "T2" and lines[1].endswith("PARKED")

    code, out, _ = run(capsys, "outbox", "list", "--json", "--db", db)
    listed = json.loads(out)
    assert [(e["localEventId"], e["_parked"], e["_attempts"]) for e in listed] == [(ids[0], False, 0), (ids[1], True, 1)]

    code, out, _ = run(capsys, "outbox", "unpark", "--db", db)
    assert (code, json.loads(out)) == (0, {"unparked": 1})
    with Cache(db) as cache:
        assert [e.local_event_id for e in cache.outbox()] == ids and cache.outbox_count(parked=True) == 0


def test_status_counts_what_the_cache_holds(tmp_path, capsys, db, issuer_key):
    run(capsys, "cache", "deny", "--token-id", "phone-9", "--expire", "2026-04-01T00:00:00Z", "--db", db)
    validate(capsys, db, scan_file(tmp_path, b"junk"))
    code, out, _ = run(capsys, "status", "--db", db)
    status = json.loads(out)
    assert code == 0
    assert {k: status[k] for k in ("outbox", "parked", "issuerKeys", "kdks", "denyEntries", "alarms")} == \
        {"outbox": 1, "parked": 0, "issuerKeys": 1, "kdks": 0, "denyEntries": 1, "alarms": {}}
