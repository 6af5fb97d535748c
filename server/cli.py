"""``python -m server ...``: serve, initialise a data directory, manage credentials.

::

    python -m server --data DIR [--host 127.0.0.1] [--port 8080] [--database URL] [--workers N]   # serve
        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM [--tls-client-auth optional]]]  # HTTPS, mTLS
    python -m server init --data DIR [--pid 1234] [--name ORG] [--admin admin] [--base-path /api/v1] [--database URL]
    python -m server credentials add --data DIR --entity ID --role val|ins|tvm|pos|admin|support [--password-stdin]
        [--cert-subject RFC4514]     # bind a TLS client certificate subject (then no password is made)
    python -m server credentials list --data DIR
    python -m server credentials remove --data DIR --entity ID
    python -m server tokens add --data DIR --pid 16 --serial 1 --jwk FILE|-    # a token's public JWK
    python -m server tokens list --data DIR
    python -m server tokens revoke|reinstate --data DIR --token THUMBPRINT [--until TIME]
    python -m server devices --data DIR [--silent-after SECONDS]      # the fleet; silent devices flagged
    python -m server b2b company|key|integration|webhook|rollover|deliver ...   # server/b2b/cli.py

``--database`` takes a SQLite file (in the data directory) or ``postgresql://user@host/db``
(the password from ``PGPASSWORD`` or ``~/.pgpass``, never on the command line).

``init`` prints the admin password once (only its argon2id hash is stored); ``credentials add``
generates a password and prints it, or with ``--password-stdin`` reads one line from standard
input (never from the command line, where ``ps`` and the shell history would show it); a
password under 12 characters is refused. Errors are one line on stderr, exit 1.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mtb import keys
from mtb.timeutil import parse_time, utcnow

from . import auth
from .auth.certs import canonical_subject
from .b2b import cli as b2b_cli
from .config import CONFIG_FILE, ServerConfig, check_database, load_config, save_config
from .keyring import create_key_material
from .store import (Credential, DatabaseUnavailable, DenyEntry, DuplicateCredential, Store, TokenRecord,
                     is_database_url, open_store)


class UsageError(Exception):
    pass


def init_data_dir(data_dir: str | Path, *, pid: int = 1234, name: str | None = None, admin_entity: str = "admin",
                  admin_password: str | None = None, **config: Any) -> str:
    """Create a fresh deployment in ``data_dir``; returns the admin password (shown once)."""
    data_dir = Path(data_dir)
    if (data_dir / CONFIG_FILE).exists():
        raise UsageError(f"{data_dir} is already initialised ({CONFIG_FILE} exists)")
    if admin_password is not None:
        try:
            auth.check_strength(admin_password)
        except auth.WeakPassword as exc:
            raise UsageError(str(exc)) from None
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = ServerConfig(pid=pid, **({"organisation_name": name} if name else {}), **config)
    settings.data_dir = str(data_dir)
    open_store(settings.database_target(), pool_size=1).close()  # the database first: nothing written if it fails
    create_key_material(data_dir, settings)
    save_config(data_dir, settings)
    return add_credential(data_dir, admin_entity, "admin", admin_password, config=settings) or ""


def add_credential(data_dir: str | Path, entity: str, role: str, password: str | None = None, *,
                   replace: bool = False, config: ServerConfig | None = None,
                   cert_subject: str | None = None) -> str | None:
    """Add a credential; returns its password (generated when none is given), or None for a
    credential bound to a certificate subject and given no password: it logs in by certificate
    only (its password is random and shown to nobody)."""
    if role not in auth.CREDENTIAL_ROLES:
        raise UsageError(f"role must be one of {', '.join(auth.CREDENTIAL_ROLES)}")
    if not entity or len(entity) > 200 or any(c in entity for c in "/:?#% \t\n"):
        raise UsageError("entity id must be 1-200 characters without / : ? # % or spaces")
    if cert_subject is not None:
        try:
            cert_subject = canonical_subject(cert_subject)
        except ValueError as exc:
            raise UsageError(f"--cert-subject: {exc}") from None
    config = config or load_config(data_dir)
    shown = password if password is not None or cert_subject is not None else auth.generate_password()
    if shown is not None:
        try:
            auth.check_strength(shown)
        except auth.WeakPassword as exc:
            raise UsageError(str(exc)) from None
    hashed = auth.hash_password(shown or auth.generate_password(), config.password_hash)
    store = open_store(config.database_target(), pool_size=1)
    try:
        store.add_credential(Credential(entity, role, config.pid, hashed, utcnow(), cert_subject), replace=replace)
    except DuplicateCredential:
        raise UsageError(f"credential {entity!r} exists (use --replace to set a new password/role)") from None
    finally:
        store.close()
    return shown


@contextmanager
def opened_store(data_dir: str | Path, config: ServerConfig | None = None) -> Iterator[Store]:
    config = config or load_config(data_dir)
    store = open_store(config.database_target(), pool_size=1)
    try:
        yield store
    finally:
        store.close()


def register_token(data_dir: str | Path, pid: int, serial: int | None, jwk: Any, *,
                   config: ServerConfig | None = None) -> str:
    """Make a token (phone, card) known to the Token API; returns its RFC 7638 thumbprint."""
    try:
        public = keys.public_token_jwk(jwk)
    except keys.KeyMaterialError as exc:
        raise UsageError(str(exc)) from None
    token_id = keys.jwk_thumbprint(public)
    with opened_store(data_dir, config) as store:
        store.add_token(TokenRecord(token_id, pid, public, utcnow(), serial))
    return token_id


def revoke_token(data_dir: str | Path, token_id: str, until: datetime | None = None, *, revoke: bool = True,
                 config: ServerConfig | None = None) -> int:
    """Revoke a token (or lift its revocation): a deny-list entry naming it, which is what the
    Token API's revocation list and the validators' deny list both show. Returns its entry id."""
    config = config or load_config(data_dir)
    now = utcnow()
    if revoke:
        expire = until or now + timedelta(days=400, seconds=config.blacklist_grace_seconds)
    else:  # an entry already expired lifts the earlier ones (see server.ticket_api.tickets)
        expire = now - timedelta(seconds=config.clock_skew_seconds)
    with opened_store(data_dir, config) as store:
        if store.get_token(token_id) is None:
            raise UsageError(f"no token {token_id!r} (tokens list shows the known ones)")
        return store.add_deny(DenyEntry(expire=expire, token_id=token_id, created_at=now,
                                        reason="token revoked" if revoke else "token reinstated"))


def _read_jwk(source: str) -> Any:
    try:
        text = sys.stdin.read(64 * 1024) if source == "-" else Path(source).read_text(encoding="utf-8")
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--jwk: not JSON: {exc}") from None


def _tokens(args: argparse.Namespace) -> int:
    if args.action == "add":
        if args.pid is None or not args.jwk:
            raise UsageError("tokens add needs --pid and --jwk (a file, or - for standard input)")
        token_id = register_token(args.data, args.pid, args.serial, _read_jwk(args.jwk), config=_config(args))
        print(json.dumps({"tokenId": token_id, "pid": args.pid, "serial": args.serial}, indent=2))
    elif args.action == "list":
        with opened_store(args.data, _config(args)) as store:
            now = utcnow()
            for token in store.list_tokens():
                revoked = "revoked" if store.denied([("token", token.token_id)], now) else "-"
                print(f"{token.token_id}\t{token.pid}\t{token.serial if token.serial is not None else '-'}\t{revoked}")
    else:
        if not args.token:
            raise UsageError(f"tokens {args.action} needs --token")
        until = parse_time(args.until) if args.until else None
        entry = revoke_token(args.data, args.token, until, revoke=args.action == "revoke", config=_config(args))
        print(json.dumps({"tokenId": args.token, "denyEntryId": entry, "action": args.action}))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .app import app_from_data_dir
    from .serving import run
    from .tls import server_ssl_context

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = _config(args)
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    if (args.tls_cert is None) != (args.tls_key is None) or (args.tls_client_ca and not args.tls_cert):
        raise UsageError("--tls-cert and --tls-key go together (and --tls-client-ca needs them)")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.workers > 1:
        from .workers import supervise
        passthrough = [*(["--access-log"] if args.access_log else []),
                       *(f"--{name.replace('_', '-')}={getattr(args, name)}"
                         for name in ("tls_cert", "tls_key", "tls_client_ca", "tls_client_auth")
                         if getattr(args, name))]
        return supervise(args.data, host, port, args.workers, config.database_target(), passthrough)
    ssl_context = server_ssl_context(args.tls_cert, args.tls_key, args.tls_client_ca,
                                     client_cert_required=args.tls_client_auth == "required") if args.tls_cert else None
    overrides = {"shared_limits": True} if args.worker else {}
    app = app_from_data_dir(args.data, database=config.database, **overrides)
    scheme = "https" if ssl_context else "http"
    if not args.worker:
        print(f"serving {config.base_path or '/'} on {scheme}://{host}:{port} (data {args.data}, "
              f"{'PostgreSQL' if is_database_url(config.database) else 'SQLite'})", flush=True)
    run(app, host, port, ssl_context=ssl_context, reuse_port=args.worker,
        access_log=logging.getLogger("aiohttp.access") if args.access_log else None)
    return 0


def _config(args: argparse.Namespace) -> ServerConfig:
    """The data directory's config, with ``--database`` (checked like the file's) over its own."""
    config = load_config(args.data)
    if getattr(args, "database", None):
        config.database = check_database(args.database)
    return config


def _init(args: argparse.Namespace) -> int:
    extra: dict[str, Any] = {"base_path": args.base_path} if args.base_path else {}
    if args.database:
        extra["database"] = args.database
    password = init_data_dir(args.data, pid=args.pid, name=args.name, admin_entity=args.admin, **extra)
    print(json.dumps({"data": str(args.data), "pid": args.pid, "adminEntity": args.admin, "adminPassword": password,
                      "note": "the password is shown only now; it is stored hashed"}, indent=2))
    return 0


def _credentials(args: argparse.Namespace) -> int:
    if args.action == "add":
        if not args.entity or not args.role:
            raise UsageError("credentials add needs --entity and --role")
        given = _read_password() if args.password_stdin else None
        password = add_credential(args.data, args.entity, args.role, given, replace=args.replace,
                                  config=_config(args), cert_subject=args.cert_subject)
        out = {"entity": args.entity, "role": args.role}
        if args.cert_subject:
            out["certSubject"] = canonical_subject(args.cert_subject)
        if given is None and password is not None:
            out["password"] = password
        print(json.dumps(out, indent=2))
    elif args.action == "list":
        with opened_store(args.data, _config(args)) as store:
            for cred in store.list_credentials():
                print(f"{cred.entity_id}\t{cred.role}\t{cred.pid}\t{cred.cert_subject or '-'}")
    else:
        if not args.entity:
            raise UsageError("credentials remove needs --entity")
        with opened_store(args.data, _config(args)) as store:
            if not store.remove_credential(args.entity):
                raise UsageError(f"no credential {args.entity!r}")
        print(f"removed {args.entity}")
    return 0


def _devices(args: argparse.Namespace) -> int:
    """The fleet, one line per device, silent and alarmed ones flagged; a summary at the end."""
    config = _config(args)
    silent_after = args.silent_after or config.device_silent_seconds
    now = utcnow()
    store = open_store(config.database_target(), pool_size=1)
    try:
        reports, offset = [], 0
        while True:
            page, total = store.list_devices(silent_since=now - timedelta(seconds=silent_after), offset=offset,
                                             limit=1000, sort_field="lastContact", sort_order="asc")
            reports += page
            offset += len(page)
            if not page or offset >= total:
                break
    finally:
        store.close()
    print(f"{'DEVICE':<24} {'LAST CONTACT':<24} {'SILENT s':>9} {'VERSION':<12} {'OUTBOX':>6} {'OLDEST s':>9} "
          f"{'PARKED':>6} {'SKEW s':>7} {'CACHE':<5} ALARMS")
    counts = {"ok": 0, "alarm": 0, "silent": 0}
    for report in reports:
        state = json.loads(report.state)
        silent_for = int((now - report.last_contact).total_seconds())
        flag = "silent" if silent_for > silent_after else "alarm" if report.alarm_count else "ok"
        counts[flag] += 1
        outbox = state.get("outbox", {})
        oldest, skew = outbox.get("oldestEventAgeSeconds"), state.get("clockSkewSeconds")
        alarms = ",".join(a["kind"] for a in state.get("alarms", [])) or "-"
        print(f"{report.device[:24]:<24} {report.last_contact.isoformat(timespec='seconds'):<24} {silent_for:>9} "
              f"{(report.software_version or '-')[:12]:<12} {report.outbox_depth:>6} "
              f"{'-' if oldest is None else round(oldest):>9} {outbox.get('parked', 0):>6} "
              f"{'-' if skew is None else round(skew, 1):>7} {'ok' if state.get('cache', {}).get('ok') else 'BAD':<5} "
              f"{alarms}{'   <- SILENT' if flag == 'silent' else ''}")
    print(f"{len(reports)} devices: {counts['ok']} ok, {counts['alarm']} with alarms, {counts['silent']} silent "
          f"(no report for over {silent_after} s)")
    return 0


DATABASE_HELP = ("a SQLite file in the data directory or postgresql://user@host[:port]/dbname, password from "
                 "PGPASSWORD or ~/.pgpass (default: config database)")


def _read_password() -> str:
    """One line from standard input (a prompt without echo when it is a terminal)."""
    if sys.stdin.isatty():
        import getpass
        return getpass.getpass("password: ")
    line = sys.stdin.readline(4097)
    if len(line) > 4096:
        raise UsageError("password too long")
    return line.rstrip("\r\n")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m server", description="The bundled BoB ticket server")
    top.add_argument("--version", action="version", version=f"%(prog)s {__import__('mtb').__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (default command)")
    serve.add_argument("--data", type=Path, required=True, help="data directory made by `init`")
    serve.add_argument("--host", default=None, help="default: config host (127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="default: config port (8080)")
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.add_argument("--database", default=None, help=DATABASE_HELP)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes behind the one port (SO_REUSEPORT); use PostgreSQL for more than 1")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --workers N
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    serve.add_argument("--tls-client-ca", type=Path,
                       help="require client certificates issued by this CA (PEM): mutual TLS")
    serve.add_argument("--tls-client-auth", choices=("required", "optional"), default="required",
                       help="with --tls-client-ca: must every client show a certificate (default), or may one "
                            "show none and log in with HTTP Basic (BoB's /auth by certificate beside Basic)")
    serve.set_defaults(func=_serve)
    init = sub.add_parser("init", help="create keys, KDK, participant metadata, config and an admin credential")
    init.add_argument("--data", type=Path, required=True)
    init.add_argument("--pid", type=int, default=1234)
    init.add_argument("--name", default=None, help="organisation name in the participant metadata")
    init.add_argument("--admin", default="admin", help="entity id of the admin credential")
    init.add_argument("--base-path", default=None)
    init.add_argument("--database", default=None, help=DATABASE_HELP + " (saved in config.json)")
    init.set_defaults(func=_init)
    creds = sub.add_parser("credentials", help="manage Basic-auth credentials")
    creds.add_argument("action", choices=("add", "list", "remove"))
    creds.add_argument("--data", type=Path, required=True)
    creds.add_argument("--entity")
    creds.add_argument("--role", choices=auth.CREDENTIAL_ROLES,
                       help="support: the operator console, read-only (no API token)")
    creds.add_argument("--password-stdin", action="store_true",
                       help="read the password (12+ characters) from standard input; default: generate one and print it")
    creds.add_argument("--replace", action="store_true", help="overwrite an existing credential")
    creds.add_argument("--database", default=None, help=DATABASE_HELP)
    creds.add_argument("--cert-subject", default=None,
                       help="bind a TLS client certificate subject (RFC 4514, e.g. CN=bus-17,O=Operator): it logs "
                            "in as this entity at GET /auth; one subject may be bound to several entities")
    creds.set_defaults(func=_credentials)
    devices = sub.add_parser("devices", help="print the fleet (last contact, software, outbox, lists, alarms); "
                                             "flags devices silent for too long")
    devices.add_argument("--data", type=Path, required=True)
    devices.add_argument("--silent-after", type=int, default=None,
                         help="seconds without a report before a device is silent (default: config "
                              "device_silent_seconds)")
    devices.add_argument("--database", default=None, help=DATABASE_HELP)
    devices.set_defaults(func=_devices)
    tokens = sub.add_parser("tokens", help="tokens (phones, cards) for the Token API, and their revocation")
    tokens.add_argument("action", choices=("add", "list", "revoke", "reinstate"))
    tokens.add_argument("--data", type=Path, required=True)
    tokens.add_argument("--pid", type=int, help="the token issuer's participant id")
    tokens.add_argument("--serial", type=int, default=None, help="the token's serial number (optional)")
    tokens.add_argument("--jwk", help="the token's public JWK: a file, or - to read standard input")
    tokens.add_argument("--token", help="the token's thumbprint (tokens list shows them)")
    tokens.add_argument("--until", help="revoke: until this time (ISO 8601; default 400 days and the grace)")
    tokens.add_argument("--database", default=None, help=DATABASE_HELP)
    tokens.set_defaults(func=_tokens)
    b2b_cli.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "init", "credentials", "tokens", "devices", "b2b", "-h", "--help", "--version"):
        argv.insert(0, "serve")
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:  # a config value: one line per field, never the value itself
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"error: {fields}", file=sys.stderr)
        return 1
    except (UsageError, OSError, ValueError, DatabaseUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
