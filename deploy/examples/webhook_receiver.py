#!/usr/bin/env python3
"""A JobTicket B2B webhook receiver that verifies ``X-Signing-Signature`` (standard library only).

Run it behind your TLS terminator::

    WEBHOOK_SECRET_FILE=/etc/jobticket/webhook-secret python3 webhook_receiver.py --port 8099

The secret is read from the file named by ``WEBHOOK_SECRET_FILE`` (never from the command line).
Each verified event is printed as one JSON line on standard output; a duplicate ``event.id``
(delivery is at least once) is acknowledged and not printed again. Answers: 204 verified,
401 bad or missing signature, 400 not JSON.

The scheme (server/b2b/webhooks.py says the same): header ``t=<unix>,v1=<hex>``,
``v1 = HMAC-SHA-256(secret, f"{t}." + raw body)``, ``t`` within 300 s of the receiver's clock.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 300
MAX_BODY = 1024 * 1024


class BadSignature(Exception):
    pass


def verify(secret: str, header: str | None, body: bytes, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise BadSignature unless ``header`` signs ``body`` (the raw bytes) with ``secret``
    at a time within ``tolerance`` seconds of ``now``."""
    if not header:
        raise BadSignature("no X-Signing-Signature header")
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            t = int(value)
        elif key == "v1":
            candidates.append(value)
    if t is None or not candidates:
        raise BadSignature("header needs t=... and v1=...")
    if abs((time.time() if now is None else now) - t) > tolerance:
        raise BadSignature("timestamp outside the tolerance window (replay?)")
    expected = hmac.new(secret.encode("utf-8"), f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise BadSignature("signature does not match")


def make_server(host: str, port: int, secret: str,
                on_event: Callable[[dict[str, Any]], None]) -> ThreadingHTTPServer:
    """An HTTP server that calls ``on_event`` once per verified, new event."""
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server name
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            try:
                verify(secret, self.headers.get("X-Signing-Signature"), body)
                event = json.loads(body)
                event_id = str(event["event"]["id"])
            except BadSignature as exc:
                self._answer(401, str(exc))
                return
            except (ValueError, KeyError, TypeError):
                self._answer(400, "not an event envelope")
                return
            with lock:
                new = event_id not in seen
                seen.add(event_id)
            if new:
                on_event(event)
            self._answer(204)

        def _answer(self, status: int, message: str = "") -> None:
            data = json.dumps({"message": message}).encode() if message else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server name
            sys.stderr.write("receiver: " + format % args + "\n")

    return ThreadingHTTPServer((host, port), Handler)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    path = os.environ.get("WEBHOOK_SECRET_FILE")
    if not path:
        print("set WEBHOOK_SECRET_FILE to the file holding the endpoint's signing secret", file=sys.stderr)
        return 2
    with open(path, encoding="utf-8") as handle:
        secret = handle.read().strip()

    def show(event: dict[str, Any]) -> None:
        print(json.dumps(event, ensure_ascii=False), flush=True)

    server = make_server(args.host, args.port, secret, show)
    print(f"listening on http://{args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
