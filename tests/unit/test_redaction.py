from __future__ import annotations

import pytest

from relay.domain.models import shown_headers
from relay.domain.redaction import REDACTED, mask_url
from relay.observability.logs import redact

# Everything either copy of the rule masked before they became one.
CREDENTIAL_NAMES = [
    "Authorization",
    "Proxy-Authorization",
    "X-Auth-Token",
    "admin_token",
    "client_secret",
    "X-Api-Key",
    "apikey",
    "api_key",
    "X-Signing-Key",
    "password",
    "Cookie",
    "Set-Cookie",
    "webhook-signature",
    "X-Webhook-Auth",
    "X-Credentials",
]
PLAIN_NAMES = ["X-Team", "content-type", "user-agent", "delivery_id"]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_api_answers_and_logs_mask_the_same_names(name: str) -> None:
    # Even when an operator lists it as public.
    assert shown_headers({name: "v"}, [name]) == {name: REDACTED}
    assert redact(None, "info", {"event": "e", name: "v"})[name] == REDACTED
    assert redact(None, "info", {"event": "e", "headers": {name: "v"}})["headers"] == {
        name: REDACTED
    }


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_other_names_show_in_logs_and_in_answers_when_public(name: str) -> None:
    assert shown_headers({name: "v"}, [name.upper()]) == {name: "v"}
    assert shown_headers({name: "v"}, []) == {name: REDACTED}
    assert redact(None, "info", {"event": "e", name: "v"})[name] == "v"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://h.example/p", "https://h.example/p"),
        ("https://u:pw@h.example/p", "https://u:[REDACTED]@h.example/p"),
        ("https://tok@h.example/p", "https://tok@h.example/p"),
        ("https://h.example/p?token=abc&x=1", "https://h.example/p?token=[REDACTED]&x=[REDACTED]"),
        ("https://h.example/p?s3cr3t", "https://h.example/p?[REDACTED]"),
    ],
)
def test_answers_mask_url_passwords_and_query_values(url: str, shown: str) -> None:
    assert mask_url(url) == shown
