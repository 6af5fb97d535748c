"""Slow and greedy clients, and errors from before the handlers (issue 11.3): a header
deadline, a body deadline, per-address and total connection caps, JSON bodies for requests
aiohttp cannot parse. Raw sockets on 127.0.0.1 against a real server."""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from server.serving import raise_open_file_limit

LIMITS = {"per_address": 8, "total": 50, "header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}


async def open_raw(d: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", d.server.port)


async def closed_by_server(reader: asyncio.StreamReader, within: float = 15.0) -> bool:
    """True once the server closed the connection (EOF or reset); False if still open after ``within``
    (a safety bound, not a measurement)."""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), within)
            if not chunk:
                return True
    except asyncio.TimeoutError:  # before OSError: TimeoutError is one
        return False
    except (ConnectionError, OSError):
        return True


def guard_of(d: Any) -> Any:
    return d.server._runner.guard


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def response_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    return status, headers, body


async def test_trickling_header_lines_cannot_exhaust_connections_or_descriptors(make_server):
    """40 clients each send a header line now and then and never finish: 8 are admitted (the
    per-address cap), the rest are closed at once, the admitted ones are closed at the header
    deadline, and afterwards the server answers and holds no more descriptors than before."""
    d = make_server(connections=LIMITS)
    guard = guard_of(d)
    fds_before = open_fds()
    conns = [await open_raw(d) for _ in range(40)]
    for _, writer in conns:
        writer.write(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    admitted, refused = [], []
    results = await asyncio.gather(*(closed_by_server(r, within=0.5) for r, _ in conns))
    for conn, closed in zip(conns, results):
        (refused if closed else admitted).append(conn)
    assert len(admitted) == LIMITS["per_address"] and len(refused) == 32
    assert guard.total == LIMITS["per_address"] and guard.refused >= 32

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for i in range(200):  # bounded; the server closes the connection long before
            try:
                writer.write(f"X-Slow-{i}: a\r\n".encode())
                await writer.drain()
            except (ConnectionError, OSError):
                return
            await asyncio.sleep(0.2)

    trickles = [asyncio.create_task(trickle(w)) for _, w in admitted]
    assert all(await asyncio.gather(*(closed_by_server(r) for r, _ in admitted)))
    for task in trickles:
        task.cancel()
    assert guard.timed_out >= LIMITS["per_address"]
    for _, writer in conns:
        writer.close()
    await asyncio.sleep(0)
    reader, writer = await open_raw(d)  # the server still answers a well-behaved client at once
    writer.write(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    status, _, body = await response_of(reader)
    assert status == 200 and json.loads(body)["openapi"].startswith("3.")
    writer.close()
    for _ in range(100):  # bounded: the server notices the closed sockets
        if guard.total == 0 and open_fds() <= fds_before + 2:
            break
        await asyncio.sleep(0.05)
    assert guard.total == 0 and not guard.by_address
    assert open_fds() <= fds_before + 2


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(make_server):
    d = make_server(connections=LIMITS)
    reader, writer = await open_raw(d)
    assert await closed_by_server(reader)
    writer.close()
    assert guard_of(d).timed_out == 1


async def test_keep_alive_requests_each_get_a_header_deadline(make_server):
    d = make_server(connections=LIMITS)
    reader, writer = await open_raw(d)
    writer.write(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, _, _ = await response_of(reader)
    assert status == 200
    writer.write(b"GET /api/v1/openapi.json HTTP/1.1\r\n")  # the second request never finishes its head
    assert await closed_by_server(reader)
    writer.close()


async def test_the_total_cap_holds_for_every_address(make_server):
    d = make_server(connections={**LIMITS, "per_address": 100, "total": 5}, trusted_proxies=["127.0.0.1"])
    conns = [await open_raw(d) for _ in range(12)]
    results = await asyncio.gather(*(closed_by_server(r, within=0.5) for r, _ in conns))
    assert results.count(False) == 5 and guard_of(d).total == 5
    for _, writer in conns:
        writer.close()


async def test_a_body_that_does_not_arrive_is_408(make_server):
    d = make_server(connections=LIMITS)
    token = d.token("val")
    reader, writer = await open_raw(d)
    writer.write(b"POST /api/v1/validation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\nX-BoB-AuthToken: " + token.encode() + b"\r\n\r\n[{")
    status, headers, body = await response_of(reader)
    assert status == 408 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "body_timeout"
    writer.close()


@pytest.mark.parametrize("raw", [
    b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x01b\r\n\r\n",  # invalid header character
    b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n",
    b"GET /api/v1/openapi.json HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
    b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n",
])
async def test_requests_aiohttp_cannot_parse_get_the_json_error_body(deployment, raw):
    reader, writer = await asyncio.open_connection("127.0.0.1", deployment.server.port)
    writer.write(raw)
    status, headers, body = await response_of(reader)
    writer.close()
    assert 400 <= status < 500 and headers["content-type"].startswith("application/json"), (status, headers, body)
    error = json.loads(body)
    assert error["code"] and error["message"].startswith("malformed HTTP request")


def test_the_open_file_limit_is_raised_towards_what_the_caps_need():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_file_limit(min(soft, 64)) == soft  # never lowered
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = soft + 1
        assert raise_open_file_limit(wanted) == wanted
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == wanted
