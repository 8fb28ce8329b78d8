from __future__ import annotations

import pytest

from relay.domain.addresses import AddressGuard, ip_literal

DEFAULT = AddressGuard()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "100.64.0.1",  # carrier-grade NAT
        "::1",
        "fe80::1%eth0",
        "fc00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    ],
)
def test_non_global_addresses_are_refused_by_default(address: str) -> None:
    assert not DEFAULT.allows(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::5db8:d822"]
)
def test_global_addresses_are_allowed(address: str) -> None:
    assert DEFAULT.allows(address)


def test_allowed_networks_open_exactly_themselves() -> None:
    guard = AddressGuard.from_cidrs(["10.1.0.0/16", "::1/128"])
    assert guard.allows("10.1.255.255")
    assert not guard.allows("10.2.0.1")
    assert guard.allows("::1")
    assert not guard.allows("127.0.0.1")


def test_ip_literals() -> None:
    assert ip_literal("[::1]") == "::1"
    assert ip_literal("10.0.0.1") == "10.0.0.1"
    assert ip_literal("example.com") is None
