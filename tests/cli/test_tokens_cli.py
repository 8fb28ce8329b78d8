"""``relay tokens`` and ``relay apply`` with a scoped token, against a real relay."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.cli import test_cli as cli
from tests.cli.test_cli import Cli, as_json, failed, ok
from tests.conftest import ADMIN_TOKEN

# The CLI suite's fixtures: a real relay served in a thread, and the CLI run against it.
app, relay_url, relay, http = cli.app, cli.relay_url, cli.relay, cli.http


def test_tokens_create_list_show_revoke(relay: Cli, http: httpx.Client) -> None:
    out = ok(relay("tokens", "create", "--name", "payments-ci", "--role", "operator",
                   "--source", "stripe"))  # fmt: skip
    [secret] = [ln.split(": ")[1] for ln in out.splitlines() if "Token (shown once)" in ln]
    token_id = secret.split(".")[0]
    assert "payments-ci" in out

    listed = ok(relay("tokens", "list"))
    assert token_id in listed
    assert secret not in listed
    shown = as_json(relay("tokens", "show", token_id, "--json"))
    assert shown["sources"] == ["stripe"]
    assert "token" not in shown

    # The CLI takes the token from RELAY_TOKEN too; an operator cannot manage tokens.
    mine = {"RELAY_TOKEN": secret, "RELAY_ADMIN_TOKEN": None}
    assert ok(relay("subscriptions", "list", env=mine)) is not None
    assert failed(relay("tokens", "list", env=mine)).startswith("error: 403 ")

    assert f"Revoked token {token_id}." in ok(relay("tokens", "revoke", token_id))
    assert failed(relay("subscriptions", "list", env=mine)) == (
        "error: 401 a valid bearer token is required"
    )
    assert failed(relay("tokens", "show", token_id)) == f"error: 404 no token '{token_id}'"
    assert ADMIN_TOKEN not in listed


FILE = """
[sources.stripe]
event_type_header = "Stripe-Event"

[sources.github]
event_type_header = "X-GitHub-Event"

[subscriptions.billing]
url = "https://billing.example.test/hooks"
sources = ["stripe"]

[subscriptions.ci]
url = "https://ci.example.test/hooks"
sources = ["github"]

[subscriptions.audit-all]
url = "https://audit.example.test/hooks"
sources = ["*"]
"""


def test_apply_with_a_scoped_token_plans_only_within_its_sources(
    relay: Cli, http: httpx.Client, tmp_path: Path
) -> None:
    http.put("/api/sources/github", json={}).raise_for_status()
    made = http.post("/api/tokens", json={"name": "payments", "role": "admin",
                                          "sources": ["stripe"]})  # fmt: skip
    env = {"RELAY_TOKEN": made.json()["token"], "RELAY_ADMIN_TOKEN": None}
    file = tmp_path / "relay.toml"
    file.write_text(FILE)

    out = ok(relay("apply", str(file), "--prune", env=env))
    assert "source github: left alone (outside this token's sources)" in out
    assert "subscription ci: left alone" in out
    assert "subscription audit-all: left alone" in out
    assert out.strip().endswith("2 created, 0 updated, 0 unchanged")
    subs = http.get("/api/subscriptions").json()["data"]
    assert [s["description"] for s in subs] == ["billing"]
    # --prune did not reach platform's source, which the token cannot see.
    assert http.get("/api/sources/github").status_code == 200

    again = as_json(relay("apply", str(file), "--prune", "--json", env=env))
    assert again["unchanged"] == 2
    assert again["outside_scope"] == ["source github", "subscription ci", "subscription audit-all"]


def test_scoped_apply_prune_leaves_alone_a_subscription_the_file_widens_beyond_its_sources(
    relay: Cli, http: httpx.Client, tmp_path: Path
) -> None:
    """The file is the shared one: platform widened ``billing`` to github too. Payments'
    token cannot apply that change; it must leave billing alone, not prune it as if the
    file no longer named it (that deleted the subscription and its signing secret)."""
    http.put("/api/sources/stripe", json={}).raise_for_status()
    http.put("/api/sources/github", json={}).raise_for_status()
    billing = http.post("/api/subscriptions", json={
        "url": "https://billing.example.test/hooks", "sources": ["stripe"],
        "description": "billing",
    }).json()  # fmt: skip
    made = http.post("/api/tokens", json={"name": "payments", "role": "admin",
                                          "sources": ["stripe"]})  # fmt: skip
    env = {"RELAY_TOKEN": made.json()["token"], "RELAY_ADMIN_TOKEN": None}
    file = tmp_path / "relay.toml"
    file.write_text(FILE.replace('sources = ["stripe"]', 'sources = ["stripe", "github"]'))

    report = as_json(relay("apply", str(file), "--prune", "--json", env=env))

    assert "subscription billing" in report["outside_scope"]
    assert [c for c in report["changes"] if c["action"] == "delete"] == []
    assert http.get(f"/api/subscriptions/{billing['id']}").status_code == 200
