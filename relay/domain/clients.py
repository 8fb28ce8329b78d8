"""Who a request comes from, for per-client limits (pure).

A client is its peer address, with IPv6 taken per /64 (one host is routinely given a whole
/64, so counting single addresses would let it open as many "clients" as it likes). Behind a
reverse proxy every connection comes from the proxy: a request from a trusted proxy is
counted by the client address the proxy names in a header the operator chose
(``X-Forwarded-For``, ``X-Real-IP``, ``CF-Connecting-IP``...). That header is believed only
from a trusted proxy; from anyone else it is a value the sender made up.

    >>> identity = ClientIdentity.from_settings(("10.0.0.0/8",), "X-Forwarded-For")
    >>> identity.peer_key("2001:db8::1") == identity.peer_key("2001:db8::ffff")
    True
    >>> identity.forwarded_key("203.0.113.9, 10.0.0.7")  # the last hop not ours
    '203.0.113.9'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from relay.domain.addresses import Network

# How much of an IPv6 address names one client: the /64 a host or a home is given.
IPV6_CLIENT_PREFIX = 64


@lru_cache(maxsize=8192)
def client_key(address: str) -> str:
    """The name per-client limits count under: the address, or its /64 for IPv6. Anything
    that is not an address (a Unix socket's peer, a mangled header) counts as itself."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


@dataclass(frozen=True)
class ClientIdentity:
    """Which peers are trusted proxies, and the header they name the client in (lower-case)."""

    trusted: tuple[Network, ...] = ()
    header: str | None = None

    @classmethod
    def from_settings(cls, cidrs: Iterable[str], header: str | None) -> ClientIdentity:
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        return cls(networks, header.lower() if header else None)

    def peer_key(self, address: str) -> str:
        return client_key(address)

    def is_trusted(self, address: str) -> bool:
        """Whether this peer is a proxy whose client header is believed."""
        return self.header is not None and _in_any(address, self.trusted)

    def forwarded_key(self, value: str) -> str | None:
        """The client a trusted proxy's header names, or None if it names none.

        A list (``X-Forwarded-For: client, proxy1, proxy2``) is read from the right: each
        proxy appends the address it got the request from, so the last entry that is not one
        of our proxies is the first address we did not put there ourselves; entries further
        left are the sender's own claims.
        """
        hops = [hop.strip() for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not _in_any(hop, self.trusted):
                return client_key(hop)
        return client_key(hops[0]) if hops else None


def _in_any(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
