"""Login limits that cannot be turned against the fleet (issue 11.2): failures per (client,
entity), trusted proxies, a slot taken before the hash, hashing in its own bounded pool,
argon2id with re-hash on login."""
from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter
from pathlib import Path

import aiohttp
import argon2
import pytest

from mtb import b64url_encode
from server import auth
from server.app import app_from_data_dir
from server.config import PasswordHashConfig
from server.context import CTX
from server.thread import ServerThread

from .conftest import PASSWORD, Api, Deployment, make_data_dir

WRONG = "not-the-password"


def stored_hash(d: Deployment, entity: str) -> str:
    return d.rows("SELECT password_hash FROM credentials WHERE entity_id = ?", (entity,))[0][0]


def set_hash(d: Deployment, entity: str, value: str) -> None:
    store = d.store()
    try:
        with store.db.transaction() as tx:
            tx.execute("UPDATE credentials SET password_hash = ? WHERE entity_id = ?", (value, entity))
    finally:
        store.close()


async def login(api: Api, entity: str, password: str = PASSWORD, forwarded_for: str | None = None) -> int:
    headers = {"Authorization": api.d.basic(entity, password)}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return (await api.get(f"/auth/{entity}", role=None, headers=headers)).status


# --- hashes -----------------------------------------------------------------------------------

def test_password_hashes_are_salted_argon2id_at_the_configured_parameters():
    password = "tr0ub4dor&3-secret"
    a, b = auth.hash_password(password), auth.hash_password(password)
    assert a != b and a.startswith("$argon2id$") and password not in a
    params = argon2.extract_parameters(a)
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)  # RFC 9106, 2nd option
    assert auth.verify_password(password, a).ok and not auth.verify_password(password.upper(), a).ok
    assert not auth.verify_password(password, None).ok and not auth.verify_password(password, "md5$x").ok
    weaker = auth.hash_password(password, PasswordHashConfig(time_cost=1, memory_kib=8192, parallelism=1))
    assert auth.verify_password(password, weaker) == auth.verify_password(password, weaker)
    assert auth.verify_password(password, weaker).rehash and not auth.verify_password(password, a).rehash


def legacy_scrypt(password: str) -> str:
    """A hash as the first release stored it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    return f"scrypt${2 ** 14}$8$1${b64url_encode(salt)}${b64url_encode(digest)}"


async def test_legacy_and_weaker_hashes_are_rehashed_at_login(make_server):
    d = make_server()  # the test deployments hash with cheap parameters (conftest FAST_HASH)
    set_hash(d, "val1", legacy_scrypt(PASSWORD))
    cheap = stored_hash(d, "ins1")
    assert argon2.extract_parameters(cheap).memory_cost == 8192
    strong = PasswordHashConfig()
    server = ServerThread(app_from_data_dir(d.data_dir, password_hash=strong.model_dump())).start()
    try:
        stronger = Deployment(d.data_dir, server)
        async with aiohttp.ClientSession() as session:
            api = Api(stronger, session)
            assert await login(api, "val1", WRONG) == 401
            assert stored_hash(d, "val1").startswith("scrypt$")  # a failed login changes nothing
            for entity in ("val1", "ins1"):
                assert await login(api, entity) == 200
                rehashed = stored_hash(d, entity)
                params = argon2.extract_parameters(rehashed)
                assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4), entity
                assert await login(api, entity) == 200  # the new hash verifies
                assert stored_hash(d, entity) == rehashed  # and is not re-hashed again
    finally:
        server.stop()


# --- failures per (client, entity) ------------------------------------------------------------

LIMIT = {"failures": 3, "window_seconds": 60, "block_seconds": 30}


async def test_failures_count_per_client_and_entity_never_against_another_entity(make_server):
    d = make_server(login_limit=LIMIT)
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        token = d.token("val")  # val1's token from before the guessing
        assert [await login(api, "val1", WRONG) for _ in range(4)] == [401, 401, 401, 429]
        assert await login(api, "val1") == 429  # this (client, entity) is blocked: a block is a block
        # every other device behind the same address logs in as usual, and has its own budget
        for entity in ("val2", "ins1", "pos1", "admin"):
            assert await login(api, entity) == 200, entity
        assert [await login(api, "val2", WRONG) for _ in range(3)] == [401, 401, 401]
        assert (await api.get("/blacklist", token=token)).status == 200  # its token keeps working


async def test_a_successful_login_forgives_earlier_failures(make_server):
    d = make_server(login_limit=LIMIT)
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        statuses = [await login(api, "val1", p) for p in (WRONG, WRONG, PASSWORD, WRONG, WRONG, PASSWORD)]
        assert statuses == [401, 401, 200, 401, 401, 200]


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(make_server):
    d = make_server(login_limit=LIMIT, trusted_proxies=["127.0.0.1"])
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        attacker, device = "203.0.113.9", "198.51.100.7"
        assert [await login(api, "val1", WRONG, attacker) for _ in range(4)] == [401, 401, 401, 429]
        assert await login(api, "val1", PASSWORD, device) == 200  # the device behind the proxy is not locked out
        assert await login(api, "val1", PASSWORD, attacker) == 429
        # the proxy appends what it saw: a client-supplied left part does not move the client
        assert await login(api, "val1", WRONG, f"{device}, {attacker}") == 429
        assert await login(api, "val1", PASSWORD, f"{attacker}, {device}") == 200


async def test_x_forwarded_for_from_any_other_peer_is_ignored(make_server):
    d = make_server(login_limit=LIMIT)  # no trusted proxies
    async with aiohttp.ClientSession() as session:
        api = Api(d, session)
        statuses = [await login(api, "val1", WRONG, f"203.0.113.{i}") for i in range(5)]
        assert statuses == [401, 401, 401, 429, 429]  # a forged header does not buy new budgets


def test_trusted_proxy_chain_is_read_from_the_right():
    from server.clients import TrustedProxies
    proxies = TrustedProxies(["10.0.0.0/8", "127.0.0.1"])
    assert proxies.client("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    assert proxies.client("127.0.0.1", "203.0.113.1, 198.51.100.7, 10.1.2.3") == "198.51.100.7"
    assert proxies.client("127.0.0.1", "garbage, 10.1.2.3") == "10.1.2.3"
    assert proxies.client("192.0.2.5", "198.51.100.7") == "192.0.2.5"  # not a trusted peer
    assert proxies.client("127.0.0.1", None) == "127.0.0.1"
    assert proxies.client("::ffff:127.0.0.1", "198.51.100.7") == "198.51.100.7"


# --- the slot is taken before the hash --------------------------------------------------------

async def test_concurrent_guesses_get_exactly_the_budget_and_then_a_block_is_a_block(make_server):
    d = make_server(login_limit={"failures": 5, "window_seconds": 60, "block_seconds": 60},
                    connections={"per_address": 400})  # 300 connections at once from 127.0.0.1
    hasher = d.server.app[CTX].hasher
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        api = Api(d, session)
        statuses = Counter(await asyncio.gather(*(login(api, "pos1", f"guess-{i:04d}-xx") for i in range(300))))
        assert statuses == {401: 5, 429: 295}
        assert hasher.done == 5  # only the budget was hashed: the rest cost no CPU
        assert await login(api, "pos1") == 429  # the correct password after the flood: still blocked
        assert await login(api, "tvm1") == 200


# --- hashing in its own bounded pool ----------------------------------------------------------

async def test_feeds_answer_while_a_login_flood_is_being_hashed(make_server):
    """The feeds a device polls must not queue behind password hashes: GET /stops answers while
    most of a flood of logins is still waiting for the hash pool."""
    flood = 24
    d = make_server(login_limit={"failures": 10_000, "window_seconds": 60, "block_seconds": 1},
                    password_hash={"workers": 1, "queue": 1000})  # production hash parameters
    (d.data_dir / "stops.txt").write_text("stop_id,stop_name,stop_lat,stop_lon,zone_id\nSA1,Central,55.6,13.0,A\n")
    hasher = d.server.app[CTX].hasher
    order: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        api = Api(d, session)
        token = d.token("val")

        async def one_login(i: int) -> None:
            await login(api, "val1", f"wrong-guess-{i:03d}")
            order.append("login")

        logins = [asyncio.create_task(one_login(i)) for i in range(flood)]
        for _ in range(2000):  # bounded: wait until the flood is queued in the pool
            if hasher.pending >= flood // 2:
                break
            await asyncio.sleep(0.005)
        assert hasher.pending >= flood // 2
        stops = await api.get("/stops", token=token)
        order.append("stops")
        assert stops.status == 200 and "Central" in stops.text
        meta = await api.get("/participantMetadata", token=token)
        assert meta.status == 200
        still_hashing = hasher.pending
        await asyncio.gather(*logins)
    assert still_hashing >= flood // 4, still_hashing
    assert order.index("stops") < flood // 2, order  # answered before most logins were


async def test_the_hash_pool_is_bounded_and_says_busy(make_server):
    d = make_server(login_limit={"failures": 10_000, "window_seconds": 60, "block_seconds": 1},
                    password_hash={"workers": 1, "queue": 2, "time_cost": 2, "memory_kib": 32768, "parallelism": 1})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        api = Api(d, session)
        replies = await asyncio.gather(*(api.get("/auth/val1", role=None,
                                                 headers={"Authorization": d.basic("val1", f"wrong-{i:03d}-xx")})
                                         for i in range(20)))
        statuses = Counter(r.status for r in replies)
        assert statuses[401] >= 3 and statuses[503] >= 1 and set(statuses) <= {401, 503}, statuses
        busy = next(r for r in replies if r.status == 503)
        assert busy.body["code"] == "busy" and busy.headers["Retry-After"] == "1"
        # a refusal for being busy did not count as a failure: the budget is intact
        assert await login(api, "val1") == 200


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_short_passwords_are_refused(tmp_path: Path, password: str):
    from server.cli import UsageError, add_credential
    data = make_data_dir(tmp_path / "d")
    with pytest.raises(UsageError, match="12 characters"):
        add_credential(data, "weak", "val", password)
    assert add_credential(data, "fine", "val", "twelve-chars") == "twelve-chars"
