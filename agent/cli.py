"""``python -m agent ...``: the operator's and the tests' command line.

Every command prints JSON or one line; bad input gets ``error: ...`` on stderr and exit 1,
never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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
    """A time with its zone (``...Z`` or ``+01:00``): a bare ``2026-01-01T12:00:00`` or a date is
    refused, not guessed as UTC (an operator in Stockholm meant local time)."""
    try:
        return parse_time(text)
    except TimeFormatError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give the zone, e.g. 2026-01-01T12:00:00Z or "
                                         "2026-01-01T13:00:00+01:00") from exc


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


def read_secret(source: str, what: str) -> bytes:
    """A key (base64url text) from a file or ``-`` (standard input): never from the command line,
    where ``ps`` and the shell's history show it to everyone on the machine."""
    try:
        text = sys.stdin.read(4096) if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the {what} from {source}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return mtb.b64url_decode(text.strip())
    except mtb.MtbFormatError:
        raise UsageError(f"the {what} in {source} is not base64url text") from None


class SecretOnCommandLine(argparse.Action):
    """A hidden old flag that took a key as its value: refused, naming the flag to use instead."""

    def __init__(self, option_strings: list[str], dest: str, *, use: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)
        self.use = use

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        parser.error(f"{option_string} is gone: keys are not taken on the command line (visible in ps); "
                     f"use {self.use}")


HEX_TEXT = re.compile(rb"^(?:[0-9A-Fa-f]{2}[\s:]*)+$")
STATUS_WORD_OK = b"\x90\x00"


def scanned_bytes(data: bytes, *, hex_text: bool | None = None) -> bytes:
    """The MTB as scanned. Text files end with a newline; binary MTBs must stay byte-exact.

    Hex text (``A26176...``, with or without spaces or colons, as card tools and readers print
    it) is decoded to its bytes: always with ``hex_text=True`` (``--hex``), and when the whole
    input is hex digits with ``None`` (base64url of an MTB never is)."""
    if data[:1] and (0xA0 <= data[0] <= 0xBF or data[0] == 0x78):
        return data
    text = data.strip()
    if hex_text is False or (hex_text is None and not HEX_TEXT.match(text)):
        return text
    try:
        return bytes.fromhex(re.sub(rb"[\s:]", b"", text).decode("ascii"))
    except ValueError:
        raise UsageError("--hex: the input is not hex text (pairs of 0-9, A-F)") from None


def not_an_mtb_hint(data: bytes) -> str:
    """A card answer still ending in its status word ``90 00`` is the reader adapter's to strip."""
    return (" (it ends in 90 00: a card's status word, which the reader adapter strips before the MTB)"
            if data.endswith(STATUS_WORD_OK) else "")


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


def check_kid(private_key: Any, pid: int, kid: str, metadata: Path) -> None:
    """The ``--kid`` must name this key in the participant metadata the validators will load:
    a ticket signed under another key's kid is refused by every validator (result 5)."""
    try:
        store = keys.KeyStore.from_metadata_file(metadata)
    except keys.KeyMaterialError as exc:
        raise UsageError(str(exc)) from exc
    listed = store.issuer_key(str(pid), kid)
    mine = [k for (p, k), key in store.issuer_keys.items()
            if p == str(pid) and key.public_numbers() == private_key.public_key().public_numbers()]
    if listed is None or listed.public_numbers() != private_key.public_key().public_numbers():
        found = f"this key is listed as {', '.join(mine)}" if mine else "this key is not listed there"
        raise UsageError(f"--kid {kid} does not name this key for pid {pid} in {metadata} ({found})")


def cmd_mtb_mint(args: argparse.Namespace) -> int:
    if (args.bind_device is None) != (args.dsp is None):
        raise UsageError("--bind-device and --dsp go together")
    if args.valid_until <= args.valid_from:
        raise UsageError(f"--valid-until {format_basic(args.valid_until)} is not after --valid-from "
                         f"{format_basic(args.valid_from)}")
    try:
        private_key = keys.load_private_key(Path(args.key).read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load private key {args.key}: {exc}") from exc
    metadata = Path(args.metadata) if args.metadata else Path(args.key).parent / "participant-metadata.json"
    if args.metadata or metadata.exists():
        check_kid(private_key, args.pid, args.kid, metadata)
    else:
        print(f"note: no {metadata.name} beside the key: --kid not checked (give --metadata)", file=sys.stderr)
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
    if (args.kdk_file is None) == (args.device_key_file is None):
        raise UsageError("give exactly one of --kdk-file and --device-key-file")
    if args.device_key_file is not None:
        device_key = read_secret(args.device_key_file, "device key")
    else:
        device_key = keys.derive_device_key(read_secret(args.kdk_file, "KDK"), args.did)
    data = read_input(args.mtb) if args.mtb == "-" or os.path.isfile(args.mtb) else args.mtb.encode()
    container = signer.device_sign(scanned_bytes(data), did=args.did, kid=args.kid, device_key=device_key,
                                   at=args.at or utcnow(), indefinite=args.indefinite)
    print(mtb.wrap_transport(container, transport_for(args.compress)))
    return 0


def cmd_mtb_decode(args: argparse.Namespace) -> int:
    data = scanned_bytes(read_input(args.file), hex_text=args.hex)
    try:
        decoded = mtb.decode(data)
    except mtb.MtbFormatError as exc:
        raise UsageError(f"not an MTB: {exc}{not_an_mtb_hint(data)}") from exc
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
    except mtb.MtbFormatError as exc:  # nothing was signed that could be checked: not "invalid"
        return {"issuerSignature": "not checked", "deviceSignature": "not checked", "eventResult": 1,
                "reason": f"not an MTB, signatures not checked: {exc}{not_an_mtb_hint(data)}"}
    issuer = verifier.verify_issuer(decoded, store)
    device = verifier.verify_device(decoded, store, device_key)
    failing = next((check for check in (issuer, device) if not check.ok), None)
    return {"issuerSignature": issuer.status, "deviceSignature": device.status,
            "eventResult": failing.code if failing else 0,
            "reason": failing.reason if failing else "signatures valid"}


def cmd_mtb_verify(args: argparse.Namespace) -> int:
    """Exit 0 only when the MTB verifies (result 0); 1 when it does not, or is not an MTB."""
    try:
        store = keys.KeyStore.from_metadata_file(args.metadata)
    except keys.KeyMaterialError as exc:
        raise UsageError(str(exc)) from exc
    for item in args.kdk_file:
        kid, sep, source = item.partition("=")
        if not sep or not kid:
            raise UsageError(f"--kdk-file wants KID=FILE, got {item!r}")
        store.kdks[kid] = read_secret(source, f"KDK {kid}")
    device_key = read_secret(args.device_key_file, "device key") if args.device_key_file else None
    result = verify_result(scanned_bytes(read_input(args.file), hex_text=args.hex), store, device_key)
    print_json(result)
    return 0 if result["eventResult"] == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo()


def cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import run_simulation
    return run_simulation(args.workdir)


# --- parser ----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__.splitlines()[0],
                                     epilog="Keys are never taken on the command line: give a FILE holding the "
                                            "base64url text, or - for standard input.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {mtb.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    keys_cmd = commands.add_parser("keys", help="make keys").add_subparsers(dest="sub", required=True)
    issuer = keys_cmd.add_parser("issuer", help="a P-256 issuer key and participant metadata")
    issuer.add_argument("--pid", required=True, type=int, help="the issuer's participant id")
    issuer.add_argument("--name", required=True, help="the key's name; its kid is PID:NAME")
    issuer.add_argument("--out", required=True, help="directory for the key (0600) and participant-metadata.json")
    issuer.set_defaults(handler=cmd_keys_issuer)
    keys_cmd.add_parser("kdk", help="print a random 32-byte KDK (base64url)").set_defaults(handler=cmd_keys_kdk)

    mtb_cmd = commands.add_parser("mtb", help="mint, sign, decode, verify MTBs").add_subparsers(dest="sub", required=True)
    mint = mtb_cmd.add_parser("mint", help="mint an issuer-signed MTB (prints base64url)")
    mint.add_argument("--key", required=True, help="issuer private key file (PKCS#8 PEM)")
    mint.add_argument("--pid", required=True, type=int, help="the issuer's participant id")
    mint.add_argument("--kid", required=True, help="the key's id in the participant metadata (checked against it)")
    mint.add_argument("--metadata", help="participant metadata to check --kid against "
                                         "(default: participant-metadata.json beside the key)")
    mint.add_argument("--ticket-id", required=True, help="the ticket's id")
    mint.add_argument("--valid-from", required=True, type=iso, help="ISO 8601 time with its zone")
    mint.add_argument("--valid-until", required=True, type=iso, help="ISO 8601 time with its zone, after --valid-from")
    for flag, what in (("--zone", "a zone the ticket covers"), ("--stop-area", "a stop area the ticket covers"),
                       ("--mode", "a mode of transport the ticket covers")):
        mint.add_argument(flag, action="append", default=None, help=f"{what} (repeat for more; none: all)")
    for flag, what in (("--traveller-id", "the traveller's id"), ("--category", "traveller category, e.g. adult"),
                       ("--product-id", "the product's id"), ("--bind-device", "bind to this device id (did)"),
                       ("--dsp", "pid of the bound device's service provider (with --bind-device)")):
        mint.add_argument(flag, help=what)
    mint.add_argument("--nbf", type=iso, help="issuer signature not valid before (ISO 8601 with zone)")
    mint.add_argument("--exp", type=iso, help="issuer signature expires (ISO 8601 with zone)")
    mint.add_argument("--compress", action="store_true", help="zlib before base64url, as barcodes do")
    mint.add_argument("--indefinite", action="store_true", help="indefinite-length maps")
    mint.set_defaults(handler=cmd_mtb_mint)

    sign = mtb_cmd.add_parser("device-sign", help="wrap an MTB in a device signature (prints base64url)")
    sign.add_argument("mtb", help="the MTB as base64url text, or a FILE, or -")
    sign.add_argument("--did", required=True, help="the device's id")
    sign.add_argument("--kid", required=True, help="the KDK's id, put in the device header")
    sign.add_argument("--kdk-file", metavar="FILE|-", help="the KDK (base64url), to derive the device key")
    sign.add_argument("--device-key-file", metavar="FILE|-", help="the device key itself (base64url)")
    for old, new in (("--kdk", "--kdk-file FILE|-"), ("--device-key", "--device-key-file FILE|-")):
        sign.add_argument(old, action=SecretOnCommandLine, use=new)
    sign.add_argument("--at", type=iso, help="signing time 't' (ISO 8601 with zone; default now)")
    sign.add_argument("--compress", action="store_true", help="zlib before base64url, as barcodes do")
    sign.add_argument("--indefinite", action="store_true", help="indefinite-length maps")
    sign.set_defaults(handler=cmd_mtb_device_sign)

    hex_help = ("the input is hex text (as card tools print it); without --hex, input made only of hex "
                "digits is taken as hex")
    decode = mtb_cmd.add_parser("decode", help="print an MTB as JSON")
    decode.add_argument("file", help="FILE (raw, zlib, base64url, zlib+base64url or hex) or -")
    decode.add_argument("--hex", action="store_true", default=None, help=hex_help)
    decode.set_defaults(handler=cmd_mtb_decode)

    verify = mtb_cmd.add_parser("verify", help="check an MTB's signatures; exit 0 only when it verifies",
                                description="Prints the signatures' status. Exit status: 0 when the MTB verifies "
                                            "(eventResult 0), 1 when it does not or is not an MTB.")
    verify.add_argument("file", help="FILE (raw, zlib, base64url, zlib+base64url or hex) or -")
    verify.add_argument("--metadata", required=True, help="participant metadata JSON")
    verify.add_argument("--kdk-file", action="append", default=[], metavar="KID=FILE",
                        help="a KDK (base64url in FILE, or - for standard input); repeat for more")
    verify.add_argument("--device-key-file", metavar="FILE|-", help="the device key itself (base64url)")
    for old, new in (("--kdk", "--kdk-file KID=FILE"), ("--device-key", "--device-key-file FILE|-")):
        verify.add_argument(old, action=SecretOnCommandLine, use=new)
    verify.add_argument("--hex", action="store_true", default=None, help=hex_help)
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
