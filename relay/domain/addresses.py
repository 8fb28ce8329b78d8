"""Which network addresses subscribers may live at (pure).

A webhook relay makes requests to URLs that its users choose, so without a guard anyone
who can create a subscription can make it call the relay's own network: cloud metadata
endpoints, admin ports on localhost, databases on the private network. As Svix does, only
globally routable addresses are allowed, plus the networks an operator allows explicitly.

    >>> guard = AddressGuard.from_cidrs(["10.1.0.0/16"])
    >>> guard.allows("93.184.216.34"), guard.allows("10.1.2.3"), guard.allows("127.0.0.1")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(Exception):
    """The subscriber's host is, or resolves to, an address the relay may not call.

    Not an ``OSError``: the connection pool would wrap that into a DNS error, and this is a
    refusal, not a failure worth retrying."""


@dataclass(frozen=True)
class AddressGuard:
    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> AddressGuard:
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in cidrs))

    def allows(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        if any(ip in network for network in self.allowed):
            return True
        inner = _embedded_ipv4(ip)
        if inner is not None:
            # ::ffff:10.0.0.5, 2002:a00:5::, 64:ff9b::a00:5 all reach 10.0.0.5 somewhere.
            return self.allows(str(inner))
        return ip.is_global and not ip.is_multicast


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


# Asked for every outbound request's host: parsing it each time was ~3% of a worker.
@lru_cache(maxsize=4096)
def ip_literal(host: str) -> str | None:
    """The host as an IP address, when it is written as one (``[::1]`` included)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
