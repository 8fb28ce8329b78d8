from __future__ import annotations

import pytest

from relay.domain.models import public_headers
from relay.domain.redaction import REDACTED
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
]
PLAIN_NAMES = ["X-Team", "content-type", "user-agent", "delivery_id"]


@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_api_answers_and_logs_mask_the_same_names(name: str) -> None:
    assert public_headers({name: "v"}) == {name: REDACTED}
    assert redact(None, "info", {"event": "e", name: "v"})[name] == REDACTED
    assert redact(None, "info", {"event": "e", "headers": {name: "v"}})["headers"] == {
        name: REDACTED
    }


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_other_names_show_in_both(name: str) -> None:
    assert public_headers({name: "v"}) == {name: "v"}
    assert redact(None, "info", {"event": "e", name: "v"})[name] == "v"
