"""``python -m server ...``: serve, initialise a data directory, manage credentials.

::

    python -m server --data DIR [--host 127.0.0.1] [--port 8080] [--database URL] [--workers N]   # serve
        [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]           # HTTPS, optionally mutual TLS
    python -m server init --data DIR [--pid 1234] [--name ORG] [--admin admin] [--base-path /api/v1] [--database URL]
    python -m server credentials add --data DIR --entity ID --role val|ins|tvm|pos|admin|support [--password-stdin]
    python -m server credentials list --data DIR
    python -m server credentials remove --data DIR --entity ID
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
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mtb.timeutil import utcnow

from . import auth
from .b2b import cli as b2b_cli
from .config import CONFIG_FILE, ServerConfig, check_database, load_config, save_config
from .keyring import create_key_material
from .store import Credential, DatabaseUnavailable, DuplicateCredential, is_database_url, open_store


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
    return add_credential(data_dir, admin_entity, "admin", admin_password, config=settings)


def add_credential(data_dir: str | Path, entity: str, role: str, password: str | None = None, *,
                   replace: bool = False, config: ServerConfig | None = None) -> str:
    if role not in auth.CREDENTIAL_ROLES:
        raise UsageError(f"role must be one of {', '.join(auth.CREDENTIAL_ROLES)}")
    if not entity or len(entity) > 200 or any(c in entity for c in "/:?#% \t\n"):
        raise UsageError("entity id must be 1-200 characters without / : ? # % or spaces")
    config = config or load_config(data_dir)
    password = auth.generate_password() if password is None else password
    try:
        auth.check_strength(password)
    except auth.WeakPassword as exc:
        raise UsageError(str(exc)) from None
    hashed = auth.hash_password(password, config.password_hash)
    store = open_store(config.database_target(), pool_size=1)
    try:
        store.add_credential(Credential(entity, role, config.pid, hashed, utcnow()), replace=replace)
    except DuplicateCredential:
        raise UsageError(f"credential {entity!r} exists (use --replace to set a new password/role)") from None
    finally:
        store.close()
    return password


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
                         for name in ("tls_cert", "tls_key", "tls_client_ca") if getattr(args, name))]
        return supervise(args.data, host, port, args.workers, config.database_target(), passthrough)
    ssl_context = server_ssl_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
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
                                  config=_config(args))
        out = {"entity": args.entity, "role": args.role}
        if given is None:
            out["password"] = password
        print(json.dumps(out, indent=2))
    elif args.action == "list":
        store = open_store(_config(args).database_target(), pool_size=1)
        try:
            for cred in store.list_credentials():
                print(f"{cred.entity_id}\t{cred.role}\t{cred.pid}")
        finally:
            store.close()
    else:
        if not args.entity:
            raise UsageError("credentials remove needs --entity")
        store = open_store(_config(args).database_target(), pool_size=1)
        try:
            if not store.remove_credential(args.entity):
                raise UsageError(f"no credential {args.entity!r}")
        finally:
            store.close()
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
    creds.set_defaults(func=_credentials)
    devices = sub.add_parser("devices", help="print the fleet (last contact, software, outbox, lists, alarms); "
                                             "flags devices silent for too long")
    devices.add_argument("--data", type=Path, required=True)
    devices.add_argument("--silent-after", type=int, default=None,
                         help="seconds without a report before a device is silent (default: config "
                              "device_silent_seconds)")
    devices.add_argument("--database", default=None, help=DATABASE_HELP)
    devices.set_defaults(func=_devices)
    b2b_cli.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "init", "credentials", "devices", "b2b", "-h", "--help", "--version"):
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
