"""Who the client is: the peer address, or, when the peer is a configured trusted proxy, the
address that proxy names in ``X-Forwarded-For``.

``X-Forwarded-For`` is honoured only from ``trusted_proxies`` (config: addresses or networks);
from any other peer it is ignored, so a client cannot pick the address it is counted under.
The header is read from the right: each trusted proxy appends the address it saw, so the first
untrusted address from the right is the client as far as the trusted chain can tell. The login
limit counts failures under this address, and the connection limits exempt the trusted
proxies themselves (all their clients share one peer address).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
FORWARDED_FOR = "X-Forwarded-For"


def _ip(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    def __init__(self, networks: Iterable[str] = ()):
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str | None) -> bool:
        ip = _ip(address) if address else None
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address (text) for a request from ``peer``."""
        peer = peer or "unknown"
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [h.strip() for h in forwarded_for.split(",")][-32:]
        client = peer
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage in the chain: the last address a trusted hop vouched for stands
            client = str(ip)
            if not any(ip in net for net in self.networks):
                break
        return client


def client_address(request: web.Request, proxies: TrustedProxies) -> str:
    return proxies.client(request.remote, request.headers.get(FORWARDED_FOR))
