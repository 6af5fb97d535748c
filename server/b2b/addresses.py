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


def allowed(address: str, extra: Sequence[Network] = ()) -> bool:
    """Whether a delivery may connect to ``address``: public, or inside an allowed network
    (an IPv4-mapped IPv6 address counts as the IPv4 address it maps)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
