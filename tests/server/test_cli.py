"""``python -m server``: init, credentials, serve (a real process on a free port)."""
from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from server.store import open_store

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, input=stdin)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_init_credentials_and_serve(tmp_path, database_for):
    data = tmp_path / "data"
    database = database_for().get("database")  # PostgreSQL: a URL given once, to init, kept in config.json
    out = run("init", "--data", str(data), "--pid", "77", "--name", "CLI Transit",
              *(["--database", database] if database else []))
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    password = shown["adminPassword"]
    assert shown["pid"] == 77 and len(password) >= 16
    for name in ("issuer-key.pem", "authtoken-key.pem", "kdk.json"):
        assert stat.S_IMODE(os.stat(data / name).st_mode) == 0o600, name
    config = json.loads((data / "config.json").read_text())
    assert config["pid"] == 77 and config["rate_limit"]["requests"] == 100
    metadata = json.loads((data / "participant-metadata.json").read_text())
    assert metadata[0]["pid"] == 77 and metadata[0]["organisationName"] == "CLI Transit"
    store = open_store(database or data / "server.sqlite3")
    stored = store.get_credential("admin").password_hash
    store.close()
    assert config["database"] == (database or "server.sqlite3")
    assert password not in stored and stored.startswith("$argon2id$")
    assert password not in "".join(p.read_text(errors="ignore") for p in data.iterdir() if p.is_file())

    again = run("init", "--data", str(data))
    assert again.returncode == 1 and "already initialised" in again.stderr and "Traceback" not in again.stderr

    added = run("credentials", "add", "--data", str(data), "--entity", "bus-17", "--role", "val")
    assert added.returncode == 0, added.stderr
    generated = json.loads(added.stdout)["password"]
    chosen = "s3cret-from-stdin"
    given = run("credentials", "add", "--data", str(data), "--entity", "shop", "--role", "pos", "--password-stdin",
                stdin=chosen + "\n")
    assert given.returncode == 0, given.stderr
    assert chosen not in given.stdout and "password" not in json.loads(given.stdout)
    short = run("credentials", "add", "--data", str(data), "--entity", "kiosk", "--role", "tvm", "--password-stdin",
                stdin="elevenchars\n")
    assert short.returncode == 1 and "12 characters" in short.stderr and "Traceback" not in short.stderr
    on_the_command_line = run("credentials", "add", "--data", str(data), "--entity", "kiosk", "--role", "tvm",
                              "--password", "a-long-enough-password")
    assert on_the_command_line.returncode == 2  # no such option: a password never goes on a command line
    dup = run("credentials", "add", "--data", str(data), "--entity", "shop", "--role", "pos")
    assert dup.returncode == 1 and "exists" in dup.stderr
    bad = run("credentials", "add", "--data", str(data), "--entity", "x", "--role", "root")
    assert bad.returncode != 0
    listed = run("credentials", "list", "--data", str(data))
    assert "bus-17\tval" in listed.stdout and chosen not in listed.stdout and "kiosk" not in listed.stdout

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--data", str(data), "--host", "127.0.0.1",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(100):
            try:
                status, doc = get(f"{base}/openapi.json")
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            pytest.fail("server did not start")
        assert status == 200 and doc["openapi"].startswith("3.")
        for entity, secret in (("admin", password), ("bus-17", generated), ("shop", chosen)):
            basic = "Basic " + base64.b64encode(f"{entity}:{secret}".encode()).decode()
            status, body = get(f"{base}/auth/{entity}", {"Authorization": basic})
            assert status == 200, (entity, body)
        token = body["jwtCompact"]
        status, _ = get(f"{base}/participantMetadata", {"X-BoB-AuthToken": token})
        assert status == 200
        removed = run("credentials", "remove", "--data", str(data), "--entity", "shop")
        assert removed.returncode == 0
        status, body = get(f"{base}/participantMetadata", {"X-BoB-AuthToken": token})
        assert status == 401
    finally:
        proc.terminate()
        proc.wait(10)


async def test_start_helper_serves_a_data_dir_on_a_free_port(tmp_path):
    import aiohttp

    from server.app import start
    from server.cli import init_data_dir
    password = init_data_dir(tmp_path / "d", pid=5)
    server = await start(tmp_path / "d", rate_limit={"requests": 2, "window_seconds": 60, "block_seconds": 60})
    try:
        basic = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/auth/admin", headers={"Authorization": basic}) as r:
                assert r.status == 200
                token = (await r.json())["jwtCompact"]
            async with session.get(f"{server.url}/participantMetadata", headers={"X-BoB-AuthToken": token}) as r:
                assert r.status == 200 and (await r.json())[0]["pid"] == 5
            async with session.get(f"{server.url}/blacklist", headers={"X-BoB-AuthToken": token}) as r:
                assert r.status == 429  # the override took effect
    finally:
        await server.close()


def test_a_database_url_with_a_password_is_refused_before_anything_is_written(tmp_path):
    for args in (("init", "--data", str(tmp_path / "d"), "--database", "postgresql://u:hunter2@127.0.0.1/db"),
                 ("init", "--data", str(tmp_path / "d"), "--database", "postgresql://u@127.0.0.1/db?password=x"),
                 ("init", "--data", str(tmp_path / "d"), "--database", "mysql://u@127.0.0.1/db")):
        out = run(*args)
        assert out.returncode == 1 and out.stderr.startswith("error:") and "Traceback" not in out.stderr, out.stderr
        assert "hunter2" not in out.stderr and not (tmp_path / "d" / "config.json").exists()
    assert "PGPASSWORD" in run(*args[:-1], "postgresql://u:pw@127.0.0.1/db").stderr
