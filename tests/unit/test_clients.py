"""Who a request counts against for per-client limits, with plain values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import Settings
from relay.domain.clients import ClientIdentity, client_key


def test_a_client_is_its_address_or_its_ipv6_64() -> None:
    assert client_key("203.0.113.9") == "203.0.113.9"
    assert (
        client_key("2001:db8:1:2::7") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::7") != client_key("2001:db8:1:2::7")
    assert client_key("::ffff:198.51.100.4") == "198.51.100.4"
    assert client_key("[::1]") == "::/64"
    assert client_key("not an address") == "not an address"


def test_only_trusted_proxies_name_the_client() -> None:
    identity = ClientIdentity.from_settings(["10.0.0.0/8", "::1/128"], "X-Forwarded-For")
    assert identity.header == "x-forwarded-for"
    assert identity.is_trusted("10.1.2.3")
    assert identity.is_trusted("::ffff:10.1.2.3")
    assert not identity.is_trusted("127.0.0.2")
    assert not ClientIdentity.from_settings(["10.0.0.0/8"], None).is_trusted("10.1.2.3")


def test_forwarded_for_is_read_from_the_right() -> None:
    identity = ClientIdentity.from_settings(["10.0.0.0/8"], "X-Forwarded-For")
    # What the sender wrote itself (the left) is not believed; the last hop not ours is.
    assert identity.forwarded_key("1.1.1.1, 203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert identity.forwarded_key("203.0.113.9") == "203.0.113.9"
    assert identity.forwarded_key("10.0.0.8, 10.0.0.7") == "10.0.0.8"  # all ours: the first
    assert identity.forwarded_key(" , ") is None
    assert identity.forwarded_key("2001:db8::1") == "2001:db8::/64"


def test_a_client_header_needs_trusted_proxies() -> None:
    with pytest.raises(ValidationError, match="RELAY_TRUSTED_PROXIES"):
        Settings(client_ip_header="X-Forwarded-For")
    with pytest.raises(ValidationError):
        Settings(trusted_proxies="10.0.0.0/33", client_ip_header="X-Real-IP")  # type: ignore[arg-type]
    settings = Settings(trusted_proxies="10.0.0.0/8, 192.168.0.1", client_ip_header="X-Real-IP")  # type: ignore[arg-type]
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.0.1")
