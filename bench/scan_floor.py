"""The floor under bench/validate.py: the same work per scan in one straight line, no check.

Each scan is unwrapped (base64url, zlib), its seven CBOR layers decoded, the issuer's ES256 and
the device's HS256 verified, the cache asked what the engine asks (its last uses here and
anywhere, other devices' uses, three deny-list candidates: ticket,
traveller, device) and its event and usage row committed,
on the same cache as bench/validate.py (1,000,000 deny entries, 100,000 usage rows) with
normal durability. Nothing is checked that a genuine ticket would not fail and nothing is
judged: what it leaves out is what the engine adds (field checks, the checks of spec §5, every
verdict, the reasons), so ``engine / floor`` is the engine's own cost and ``floor / ES256`` is
the most any engine on this interpreter and this SQLite could reach.

    .venv/bin/python bench/scan_floor.py [--scans 8000] [--rounds 8]
"""
from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from validate import NOW, bare_rate, engine_rate, fill, mint_scans  # noqa: E402

import mtb  # noqa: E402
from agent.cache import Cache  # noqa: E402
from agent.engine import Engine  # noqa: E402
from mtb import keys  # noqa: E402
from mtb.scan_context import Context, Geo, Validator  # noqa: E402

ES256 = ec.ECDSA(hashes.SHA256())
READS = ("SELECT * FROM (SELECT ticket_id, time FROM usage WHERE ticket_id=? AND result=0 ORDER BY epoch DESC "
         "LIMIT 1) UNION ALL SELECT * FROM (SELECT ticket_id, time FROM usage WHERE ticket_id=? AND result=0 "
         "AND device_id=? ORDER BY epoch DESC LIMIT 1) UNION ALL SELECT * FROM (SELECT ticket_id, time "
         "FROM fleet_uses WHERE ticket_id=? ORDER BY epoch DESC LIMIT 1) UNION ALL SELECT kind, value "
         "FROM deny_list WHERE kind=? AND value=? AND expire_epoch > ? UNION ALL SELECT kind, value "
         "FROM deny_list WHERE kind=? AND value=? AND expire_epoch > ? UNION ALL SELECT kind, value "
         "FROM deny_list WHERE kind=? AND value=? AND expire_epoch > ?")


def straight_line(cache: Cache, public: ec.EllipticCurvePublicKey, kdk: bytes):
    conn, epoch, when = cache.conn, NOW.timestamp(), NOW.isoformat()

    def scan(text: str) -> None:
        container = zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        device_header, inner, device_signature = cbor2.loads(cbor2.loads(container)["p"])
        did = cbor2.loads(device_header)["did"]
        issuer_header, payload, signature = cbor2.loads(inner)
        cbor2.loads(issuer_header)
        ticket = next(iter(cbor2.loads(payload).values()))[0]
        ticket_id = ticket["c_md"][0]["tid"]
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        public.verify(der, cbor2.dumps([issuer_header, payload]), ES256)
        device_key = hmac.digest(kdk, did.encode(), "sha256")[:keys.DEVICE_KEY_BYTES]
        if not hmac.compare_digest(hmac.digest(device_key, cbor2.dumps([device_header, inner]), "sha256"),
                                   device_signature):
            raise ValueError("device signature")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(READS, (ticket_id, ticket_id, "bus-1", ticket_id, "ticket", ticket_id, epoch,
                             "traveller", ticket["trv"], epoch, "token", did, epoch)).fetchall()
        event_id = str(uuid.uuid4())
        event = {"ticketId": ticket_id, "localEventId": event_id, "eventResult": 0, "eventReason": "valid",
                 "time": when, "operatingDayDate": NOW.date().isoformat(),
                 "mtbReference": {"pid": 1234, "issuerSignature": base64.urlsafe_b64encode(signature).decode()},
                 "deviceReference": {"pid": 1234, "did": did}, "eventType": "validation",
                 "validator": {"validatorId": "bus-1"}, "geo": {"lat": 59.33, "long": 18.06},
                 "zone": {"pid": 1234, "zoneId": "A"}, "modeOfTransport": "bus"}
        conn.execute("INSERT INTO outbox(local_event_id, event_type, body, created_at) VALUES (?,?,?,?)",
                     (event_id, "validation", json.dumps(event, separators=(",", ":")), when))
        conn.execute("INSERT INTO usage(ticket_id, time, epoch, event_type, result, device_id, zone, lat, long) "
                     "VALUES (?,?,?,'validation',0,'bus-1','A',59.33,18.06)", (ticket_id, when, epoch))
        conn.execute("COMMIT")
    return scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8000, help="scans per measure, split over the rounds")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    key, kdk = keys.generate_es256_key(), os.urandom(32)
    per_round = max(2, args.scans // args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(Path(tmp) / "floor.db", durability="normal")
        cache.import_metadata(keys.participant_metadata(1234, [keys.public_jwk(key, "1234:k1")]))
        cache.add_kdk("kdk-1", kdk)
        fill(cache, 1_000_000, 100_000)
        floor_scans = mint_scans(key, kdk, per_round * args.rounds, "F")
        engine_scans = mint_scans(key, kdk, per_round * args.rounds, "E")
        layers = [mtb.decode(s).issuer for s in floor_scans[:per_round]]
        scan, engine = straight_line(cache, key.public_key(), kdk), Engine(cache)
        ctx = Context(time=NOW, validator=Validator("bus-1"), zone="A", mode_of_transport="bus",
                      geo=Geo(59.33, 18.06), operator_pid=1234)
        bare = floor = judged = 0.0
        for r in range(args.rounds):
            chunk = slice(r * per_round, (r + 1) * per_round)
            bare = max(bare, bare_rate(key.public_key(), layers)[1])
            cpu = time.process_time()
            for text in floor_scans[chunk]:
                scan(text)
            floor = max(floor, per_round / (time.process_time() - cpu))
            judged = max(judged, engine_rate(engine, ctx, engine_scans[chunk], [])[1])
        engine.close()
        cache.close()
    print("                    per second of CPU time, one core, normal durability")
    print(f"bare ES256 verify:  {bare:8.0f} /s")
    print(f"straight line:      {floor:8.0f} /s   floor / ES256:  {floor / bare:.2f}")
    print(f"engine:             {judged:8.0f} /s   engine / ES256: {judged / bare:.2f}   engine / floor: "
          f"{judged / floor:.2f}")


if __name__ == "__main__":
    main()
