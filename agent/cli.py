"""``python -m agent ...``: the operator's and the tests' command line.

Every command prints JSON or one line; bad input gets ``error: ...`` on stderr and exit 1,
never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import mtb
from mtb import keys, signer, verifier
from mtb.timeutil import TimeFormatError, format_basic, parse_time, utcnow

from .cache_file import CacheError

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command line that cannot be carried out as given (exit 1, one line)."""


def iso(text: str) -> datetime:
    try:
        return parse_time(text, assume_utc=True)
    except TimeFormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def b64u(text: str) -> bytes:
    try:
        return mtb.b64url_decode(text)
    except mtb.MtbFormatError as exc:
        raise argparse.ArgumentTypeError(f"not base64url: {text!r:.40}") from exc


def read_input(source: str) -> bytes:
    """Read an MTB from a file or ``-``; never more than the decoder would accept, plus one."""
    limit = mtb.MAX_INPUT_BYTES + 1
    try:
        if source == "-":
            return sys.stdin.buffer.read(limit)
        with open(source, "rb") as handle:
            return handle.read(limit)
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from exc


def scanned_bytes(data: bytes) -> bytes:
    """Text files end with a newline; binary MTBs must stay byte-exact."""
    return data if data[:1] and (0xA0 <= data[0] <= 0xBF or data[0] == 0x78) else data.strip()


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return mtb.b64url_encode(value)
    if isinstance(value, datetime):
        return format_basic(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)  # e.g. CBOR undefined or simple values in a decoded header


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), ensure_ascii=False, indent=2))


def ticket_json(ticket: mtb.Ticket) -> dict[str, Any]:
    return {"ticketId": ticket.ticket_id, "issuerPid": ticket.issuer_pid, "productId": ticket.product_id,
            "validFrom": ticket.valid_from, "validUntil": ticket.valid_until, "zones": ticket.zones,
            "stopAreas": ticket.stop_areas, "modes": ticket.modes, "travellerId": ticket.traveller_id,
            "category": ticket.category, "active": ticket.active, "fields": ticket.fields}


# --- keys ------------------------------------------------------------------------------------

def cmd_keys_issuer(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    kid = f"{args.pid}:{args.name}"
    key = keys.generate_es256_key()
    key_path = out / f"{args.pid}-{args.name}.key.pem"
    if key_path.exists():
        raise UsageError(f"{key_path} exists: choose another --name (keys are never overwritten)")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(keys.private_key_pem(key))
    meta_path = out / "participant-metadata.json"
    participants = json.loads(meta_path.read_text()) if meta_path.exists() else []
    for participant in participants:
        if str(participant.get("pid")) == str(args.pid):
            participant.setdefault("mtbPublicKeys", []).append(keys.public_jwk(key, kid))
            break
    else:
        participants += keys.participant_metadata(args.pid, [keys.public_jwk(key, kid)])
    meta_path.write_text(json.dumps(participants, indent=2) + "\n")
    print_json({"kid": kid, "privateKey": str(key_path), "participantMetadata": str(meta_path)})
    return 0


def cmd_keys_kdk(args: argparse.Namespace) -> int:
    print(mtb.b64url_encode(os.urandom(32)))
    return 0


# --- mtb -------------------------------------------------------------------------------------

def transport_for(compress: bool) -> mtb.Transport:
    return "zlib+base64url" if compress else "base64url"


def cmd_mtb_mint(args: argparse.Namespace) -> int:
    if (args.bind_device is None) != (args.dsp is None):
        raise UsageError("--bind-device and --dsp go together")
    try:
        private_key = keys.load_private_key(Path(args.key).read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load private key {args.key}: {exc}") from exc
    ticket = signer.TicketSpec(
        ticket_id=args.ticket_id, valid_from=args.valid_from, valid_until=args.valid_until,
        zones=args.zone, stop_areas=args.stop_area, modes=args.mode, traveller_id=args.traveller_id,
        category=args.category, product_id=args.product_id)
    container = signer.mint(private_key, pid=args.pid, kid=args.kid, tickets=[ticket], nbf=args.nbf,
                            exp=args.exp, bind_device=args.bind_device, dsp=args.dsp,
                            indefinite=args.indefinite)
    print(mtb.wrap_transport(container, transport_for(args.compress)))
    return 0


def cmd_mtb_device_sign(args: argparse.Namespace) -> int:
    if (args.kdk is None) == (args.device_key is None):
        raise UsageError("give exactly one of --kdk and --device-key")
    device_key = args.device_key or keys.derive_device_key(args.kdk, args.did)
    data = read_input(args.mtb) if args.mtb == "-" or os.path.isfile(args.mtb) else args.mtb.encode()
    container = signer.device_sign(scanned_bytes(data), did=args.did, kid=args.kid, device_key=device_key,
                                   at=args.at or utcnow(), indefinite=args.indefinite)
    print(mtb.wrap_transport(container, transport_for(args.compress)))
    return 0


def cmd_mtb_decode(args: argparse.Namespace) -> int:
    decoded = mtb.decode(scanned_bytes(read_input(args.file)))
    device = decoded.device
    print_json({
        "transport": decoded.transport,
        "issuerHeader": decoded.issuer.header.fields,
        "issuerSignature": decoded.issuer.signature,
        "deviceHeader": device.header.fields if device else None,
        "deviceSignature": device.signature if device else None,
        "tickets": [ticket_json(t) for t in decoded.tickets],
    })
    return 0


def verify_result(data: bytes, store: keys.KeyStore, device_key: bytes | None) -> dict[str, Any]:
    try:
        decoded = mtb.decode(data)
    except mtb.MtbFormatError as exc:
        return {"issuerSignature": "invalid", "deviceSignature": "absent", "eventResult": 1,
                "reason": str(exc)}
    issuer = verifier.verify_issuer(decoded, store)
    device = verifier.verify_device(decoded, store, device_key)
    failing = next((check for check in (issuer, device) if not check.ok), None)
    return {"issuerSignature": issuer.status, "deviceSignature": device.status,
            "eventResult": failing.code if failing else 0,
            "reason": failing.reason if failing else "signatures valid"}


def cmd_mtb_verify(args: argparse.Namespace) -> int:
    try:
        store = keys.KeyStore.from_metadata_file(args.metadata)
    except keys.KeyMaterialError as exc:
        raise UsageError(str(exc)) from exc
    for item in args.kdk:
        kid, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--kdk wants KID=B64U, got {item!r}")
        store.kdks[kid] = b64u(value)
    print_json(verify_result(scanned_bytes(read_input(args.file)), store, args.device_key))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo()


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import run_simulation
    return run_simulation(args.workdir)


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    keys_cmd = commands.add_parser("keys", help="make keys").add_subparsers(dest="sub", required=True)
    issuer = keys_cmd.add_parser("issuer", help="a P-256 issuer key and participant metadata")
    issuer.add_argument("--pid", required=True, type=int)
    issuer.add_argument("--name", required=True)
    issuer.add_argument("--out", required=True)
    issuer.set_defaults(handler=cmd_keys_issuer)
    keys_cmd.add_parser("kdk", help="print a random 32-byte KDK (base64url)").set_defaults(handler=cmd_keys_kdk)

    mtb_cmd = commands.add_parser("mtb", help="mint, sign, decode, verify MTBs").add_subparsers(dest="sub", required=True)
    mint = mtb_cmd.add_parser("mint", help="mint an issuer-signed MTB (prints base64url)")
    mint.add_argument("--key", required=True, help="issuer private key (PKCS#8 PEM)")
    mint.add_argument("--pid", required=True, type=int)
    mint.add_argument("--kid", required=True)
    mint.add_argument("--ticket-id", required=True)
    mint.add_argument("--valid-from", required=True, type=iso)
    mint.add_argument("--valid-until", required=True, type=iso)
    for flag in ("--zone", "--stop-area", "--mode"):
        mint.add_argument(flag, action="append", default=None)
    for flag in ("--traveller-id", "--category", "--product-id", "--bind-device", "--dsp"):
        mint.add_argument(flag)
    mint.add_argument("--nbf", type=iso)
    mint.add_argument("--exp", type=iso)
    mint.add_argument("--compress", action="store_true", help="zlib before base64url, as barcodes do")
    mint.add_argument("--indefinite", action="store_true", help="indefinite-length maps")
    mint.set_defaults(handler=cmd_mtb_mint)

    sign = mtb_cmd.add_parser("device-sign", help="wrap an MTB in a device signature (prints base64url)")
    sign.add_argument("mtb", help="the MTB as base64url text, or a FILE, or -")
    sign.add_argument("--did", required=True)
    sign.add_argument("--kid", required=True)
    sign.add_argument("--kdk", type=b64u)
    sign.add_argument("--device-key", type=b64u)
    sign.add_argument("--at", type=iso)
    sign.add_argument("--compress", action="store_true")
    sign.add_argument("--indefinite", action="store_true")
    sign.set_defaults(handler=cmd_mtb_device_sign)

    decode = mtb_cmd.add_parser("decode", help="print an MTB as JSON")
    decode.add_argument("file", help="FILE (text or binary) or -")
    decode.set_defaults(handler=cmd_mtb_decode)

    verify = mtb_cmd.add_parser("verify", help="check an MTB's signatures")
    verify.add_argument("file")
    verify.add_argument("--metadata", required=True, help="participant metadata JSON")
    verify.add_argument("--kdk", action="append", default=[], metavar="KID=B64U")
    verify.add_argument("--device-key", type=b64u)
    verify.set_defaults(handler=cmd_mtb_verify)

    commands.add_parser("demo", help="mint, device-sign and validate a ticket").set_defaults(handler=cmd_demo)
    simulate = commands.add_parser("simulate", help="server + bus, platform and handheld agents on loopback")
    simulate.add_argument("--workdir", help="keep the server data and device caches here (default: a temp dir)")
    simulate.set_defaults(handler=cmd_simulate)
    from . import cli_engine  # registers cache, validate, outbox

    cli_engine.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Known failures (bad input, files, the database, config) are one line and exit 1."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, CacheError, ValueError, OSError, sqlite3.Error) as exc:  # format, key, config, GTFS: ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 1
