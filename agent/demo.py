"""The foundation demo: an issuer mints a ticket, a phone device-signs it, a validator checks it."""
from __future__ import annotations

import os
from datetime import timedelta

import mtb
from mtb import keys, signer, verifier
from mtb.timeutil import format_extended, utcnow


def run_demo() -> int:
    now = utcnow()
    issuer_key = keys.generate_es256_key()
    kid = "1234:demo"
    store = keys.KeyStore()
    store.add_metadata(keys.participant_metadata(1234, [keys.public_jwk(issuer_key, kid)]))
    kdk = os.urandom(32)
    store.kdks["kdk-1"] = kdk

    ticket = signer.TicketSpec(ticket_id="DEMO-1", valid_from=now - timedelta(minutes=5),
                               valid_until=now + timedelta(hours=1), zones=["A"], modes=["bus"],
                               product_id="single-adult", category="adult")
    issued = signer.mint(issuer_key, pid=1234, kid=kid, tickets=[ticket], bind_device="phone-42", dsp=1234)
    print(f"1. issuer 1234 minted ticket {ticket.ticket_id} bound to device phone-42: {len(issued)} bytes")

    device_key = keys.derive_device_key(kdk, "phone-42")
    signed = signer.device_sign(issued, did="phone-42", kid="kdk-1", device_key=device_key, at=now)
    barcode = mtb.wrap_transport(signed, "zlib+base64url")
    print(f"2. phone-42 device-signed it at {format_extended(now)}; barcode text ({len(barcode)} chars):")
    print(f"   {barcode}")

    scanned = mtb.decode(barcode)
    issuer_check = verifier.verify_issuer(scanned, store)
    device_check = verifier.verify_device(scanned, store)
    print(f"3. validator decoded {scanned.transport}: tickets {[t.ticket_id for t in scanned.tickets]}")
    print(f"   issuer signature: {issuer_check.status} ({issuer_check.reason})")
    print(f"   device signature: {device_check.status} ({device_check.reason})")

    stripped = mtb.container(scanned.issuer.body)
    stripped_check = verifier.verify_device(mtb.decode(stripped), store)
    print(f"4. the same MTB with its device signature stripped: result {stripped_check.code} "
          f"({stripped_check.reason})")
    ok = issuer_check.ok and device_check.status == "valid" and stripped_check.code == 4
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1
