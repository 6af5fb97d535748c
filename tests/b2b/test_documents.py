"""The ticket document: a PDF whose Aztec symbol, scanned from the rendered page, gives back the
MTB's bytes, and ``python -m agent mtb verify`` accepts them."""
from __future__ import annotations

import json
import subprocess
import sys
import zlib
from datetime import date, datetime, timezone

from mtb import b64url_decode

from server.b2b import documents
from server.b2b.cli import run_rollover

from .conftest import ROOT, row
from .scan import pdf_text, scan_pdf


def test_the_page_says_who_when_where_and_its_symbol_scans_back():
    payload = zlib.compress(b"\xa2" + bytes(range(256)) * 2, 9)
    doc = documents.TicketDocument("May 2026 Job Ticket", "Łódź Trams S.A.", "Zoë Ångström-Łukasiewicz", "tkt-1",
                                   date(2026, 5, 1), date(2026, 5, 31), "Europe/Berlin", ("A", "B"), ("bus", "tram"),
                                   payload)
    pdf = documents.render(doc)
    assert pdf.startswith(b"%PDF")
    assert scan_pdf(pdf) == payload
    text = pdf_text(pdf)
    for expected in ("May 2026 Job Ticket", "Zoë Ångström-Łukasiewicz", "2026-05-01 to 2026-05-31", "A, B",
                     "bus, tram", "tkt-1"):
        assert expected in text, expected


async def test_a_rolled_over_document_scans_to_an_mtb_the_agent_verifies(world, tmp_path):
    company = world.company()
    assert (await company.sync([row("V1", first="Jürgen", last="Groß")])).status == 204
    await run_rollover(world.data_dir, datetime.now(timezone.utc))
    employee = await company.employee("V1")
    [document] = (await company.get(f"/employees/{employee['id']}/documents")).body["data"]["data"]
    pdf = (await company.get(f"/employee-documents/{document['id']}/download")).raw
    scanned = scan_pdf(pdf)
    mtb_text = (await company.get(f"/employees/{employee['id']}/ticket")).body["data"]["mtb"]
    assert scanned == b64url_decode(mtb_text)
    assert "Jürgen Groß" in pdf_text(pdf)
    path = tmp_path / "scanned.bin"
    path.write_bytes(scanned)
    out = subprocess.run([sys.executable, "-m", "agent", "mtb", "verify", str(path), "--metadata",
                          str(world.data_dir / "participant-metadata.json")], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True).stdout
    result = json.loads(out)
    assert result["issuerSignature"] == "valid" and result["eventResult"] == 0, result
    decoded = json.loads(subprocess.run([sys.executable, "-m", "agent", "mtb", "decode", str(path)],
                                        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True).stdout)
    [ticket] = decoded["tickets"]
    assert ticket["ticketId"] == employee["ticket"]["ticketId"] and ticket["zones"] == ["A", "B"]
