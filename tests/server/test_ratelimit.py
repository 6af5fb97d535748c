"""Rate limit per credential: N requests per rolling window, then 429 + Retry-After and a block."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from server.auth.ratelimit import DatabaseLimiter, RateLimiter
from server.store import StoreRunner, open_store

from .conftest import Api


async def test_limit_then_429_with_retry_after_block_honoured_then_served_again(make_server):
    deployment = make_server(rate_limit={"requests": 5, "window_seconds": 2, "block_seconds": 1, "roles": {}})
    async with aiohttp.ClientSession() as session:
        api = Api(deployment, session)
        token = deployment.token("val")  # GET /auth/val1 is request 1 for credential val1
        for _ in range(4):
            assert (await api.get("/blacklist", token=token)).status == 200
        over = await api.get("/blacklist", token=token)
        assert over.status == 429 and over.body["code"] == "rate_limited"
        assert over.headers["Retry-After"] == "1"
        # blocked: every route, even a fresh token from /auth, gets 429
        assert (await api.get("/participantMetadata", token=token)).status == 429
        auth = await api.get("/auth/val1", role=None, headers={"Authorization": deployment.basic("val1")})
        assert auth.status == 429 and int(auth.headers["Retry-After"]) >= 1
        # other credentials are not affected
        assert (await api.get("/blacklist", role="ins")).status == 200
        await asyncio.sleep(1.1)
        assert (await api.get("/blacklist", token=token)).status == 200
        assert (await api.get("/openapi.json", role=None)).status == 200  # the server still answers


async def test_password_guessing_is_rate_limited(make_server):
    deployment = make_server(login_limit={"failures": 3, "window_seconds": 60, "block_seconds": 30})
    async with aiohttp.ClientSession() as session:
        api = Api(deployment, session)
        statuses = []
        for _ in range(5):
            reply = await api.get("/auth/pos1", role=None, headers={"Authorization": deployment.basic("pos1", "guess")})
            statuses.append(reply.status)
        assert statuses == [401, 401, 401, 429, 429]
        right = await api.get("/auth/pos1", role=None, headers={"Authorization": deployment.basic("pos1")})
        assert right.status == 429 and 1 <= int(right.headers["Retry-After"]) <= 30


async def test_rate_limit_can_be_disabled(make_server):
    deployment = make_server(rate_limit={"enabled": False, "requests": 1})
    async with aiohttp.ClientSession() as session:
        api = Api(deployment, session)
        for _ in range(5):
            assert (await api.get("/blacklist", role="val")).status == 200


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=("memory", "database"))
def make_limiter(request, tmp_path, database_for):
    """Either storage of the one rule: in memory, or in the store of this run's backend."""
    opened = []

    def make(requests, window, block, *, roles=None):
        clock = Clock()
        if request.param == "memory":
            return RateLimiter(requests, window, block, clock=clock, roles=roles), clock
        store = open_store(database_for().get("database") or tmp_path / "limits.db")
        run = StoreRunner(store)
        opened.append(run)
        return DatabaseLimiter(run, store, requests, window, block, clock=clock, roles=roles), clock

    yield make
    for run in opened:
        run.close()


async def test_window_is_rolling(make_limiter):
    limiter, clock = make_limiter(3, 60, 300)
    for step in (0, 20, 40):
        clock.t = 1000 + step
        assert await limiter.hit("a") is None
    clock.t = 1059
    assert await limiter.hit("b") is None  # per key
    clock.t = 1060.5  # the first hit (t=1000) left the window: room for one
    assert await limiter.hit("a") is None
    clock.t = 1061
    assert await limiter.hit("a") == 300  # 4 in the last 60 s: blocked
    assert await limiter.blocked("a") == 300 and await limiter.blocked("b") is None
    clock.t = 1200
    assert await limiter.hit("a") == 161  # still blocked, counting down
    clock.t = 1361
    assert await limiter.hit("a") is None  # block over, fresh window


async def test_without_a_block_retry_after_is_when_the_window_frees_up(make_limiter):
    limiter, clock = make_limiter(2, 10, 0)
    assert await limiter.hit("a") is None and await limiter.hit("a") is None
    clock.t += 4
    assert await limiter.hit("a") == 6


async def test_a_role_has_its_own_limit_and_block(make_limiter):
    limiter, _ = make_limiter(2, 60, 300, roles={"val": (4, 60, 30)})
    assert [await limiter.hit("bus-1", "val") for _ in range(5)] == [None] * 4 + [30]
    assert [await limiter.hit("shop-1", "pos") for _ in range(3)] == [None, None, 300]  # no own limit: the default
    assert [await limiter.hit("login-failures:x") for _ in range(3)] == [None, None, 300]


async def test_the_database_limiter_forgets_what_no_longer_counts(tmp_path):
    store = open_store(tmp_path / "limits.db")
    run = StoreRunner(store)
    clock = Clock()
    limiter = DatabaseLimiter(run, store, 2, 10, 30, clock=clock)
    for key in ("a", "b", "b", "b"):
        await limiter.hit(key)  # a: one hit; b: blocked until 1030
    clock.t += DatabaseLimiter.SWEEP_SECONDS + 1  # both over: swept at the next hit
    assert await limiter.hit("c") is None
    assert [r["limit_key"] for r in store.db.query("SELECT limit_key FROM rate_limits")] == ["c"]
    run.close()


def test_device_roles_get_their_own_default_limit():
    from server.config import RateLimitConfig

    default = RateLimitConfig()
    assert default.for_role("val") == default.for_role("ins") == (120, 60.0, 60.0)
    assert default.for_role("pos") == default.for_role(None) == (100, 60.0, 300.0)
    partial = RateLimitConfig(requests=10, roles={"val": {"requests": 50}})
    assert partial.for_role("val") == (50, 60.0, 300.0)  # what the role leaves out is the default's
    assert RateLimitConfig(roles={}).for_role("val") == (100, 60.0, 300.0)


async def test_the_server_applies_the_device_limit_to_a_device_credential(make_server):
    """Default limits: a validator (120 a minute) outlasts a point of sale (100) on one server."""
    deployment = make_server()
    async with aiohttp.ClientSession() as session:
        api = Api(deployment, session)
        device, shop = deployment.token("val"), deployment.token("pos")  # /auth is request 1 of each
        device_statuses = [(await api.get("/blacklist", token=device)).status for _ in range(120)]
        shop_statuses = [(await api.get("/blacklist", token=shop)).status for _ in range(100)]
    assert device_statuses == [200] * 119 + [429]
    assert shop_statuses == [200] * 99 + [429]
