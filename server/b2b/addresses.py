"""Where webhooks may go: the address policy of the sender.

An employer's HR platform is somewhere on the internet; the server's own host and the networks
around it are not places a webhook URL may lead (a partner that gets its "webhook" registered
as ``http://127.0.0.1:5432/`` or ``http://169.254.169.254/`` would make the server POST into
them). So a delivery connects only to a globally routable address, or to one of the networks
the operator allows (``b2b.webhook_allowed_networks``: an HR system on the operator's own
network, a receiver on the same host). The check is made on each address the connection is
about to use, after DNS, so a name that resolves to loopback (or is re-pointed there between
two deliveries) is refused like the literal address; redirects are never followed.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(texts: Sequence[str]) -> tuple[Network, ...]:
    """The configured networks (``10.0.0.0/8``, ``127.0.0.1``); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: a NAT64 gateway forwards to the IPv4 address inside
COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291's deprecated IPv4-compatible addresses


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if ip.ipv4_mapped is not None or ip.sixtofour is not None:
        return ip.ipv4_mapped or ip.sixtofour
    if ip in NAT64 or (ip in COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def allowed(address: str, extra: Sequence[Network] = ()) -> bool:
    """Whether a delivery may connect to ``address``: public, or inside an allowed network. An
    IPv6 address that leads to an IPv4 one (``::ffff:127.0.0.1``, ``64:ff9b::a00:1``,
    ``2002:7f00:1::``) is judged by that IPv4 address."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip in net for net in extra):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    return any(ip in net for net in extra) or (ip.is_global and not ip.is_multicast)


def socket_factory(extra: Sequence[Network] = ()) -> Callable[[tuple[Any, ...]], socket.socket]:
    """An aiohttp ``TCPConnector(socket_factory=...)`` that refuses every address the policy
    does not allow (the connection attempt fails with that OSError, which the log keeps)."""
    def make(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not allowed(sockaddr[0], extra):
            raise OSError(errno.EACCES, f"address {sockaddr[0]} not allowed for webhooks (not public, nor in "
                                        "b2b.webhook_allowed_networks)")
        return socket.socket(family=family, type=type_, proto=proto)
    return make
