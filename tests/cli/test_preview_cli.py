"""``relay subscriptions preview`` against the real API (uvicorn), real Redis."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from relay.devtools.receiver import Receiver
from tests.cli.test_cli import (  # noqa: F401 (fixtures)
    Cli,
    app,
    as_json,
    failed,
    http,
    ingest,
    ok,
    relay,
    relay_url,
)
from tests.payloads import GITHUB_PUSH, raw


def test_preview_a_subscription_and_an_unsaved_transform(
    relay: Cli,  # noqa: F811 (the fixture)
    http: httpx.Client,  # noqa: F811 (the fixture)
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    ok(relay("sources", "put", "github", "--event-type-header", "X-GitHub-Event"))
    transform = tmp_path / "transform.json"
    spec = {"body": "{after: after}", "headers": {"X-Repo": "{{ body.repository.full_name }}"}}
    transform.write_text(json.dumps(spec))
    create = ("subscriptions", "create", "--url", receiver.url, "--source", "github",
              "--filter", '{"body": "ref", "eq": "refs/heads/main"}',
              "--transform", f"@{transform}", "--json")  # fmt: skip
    sub_id = as_json(relay(*create))["id"]
    shown = ok(relay("subscriptions", "show", sub_id))
    assert '{"body":"ref","eq":"refs/heads/main"}' in shown
    assert "{{ body.repository.full_name }}" in shown
    event_id = ingest(http, raw(GITHUB_PUSH))

    out = ok(relay("subscriptions", "preview", sub_id, "--event", event_id))
    assert "Matched (transform " in out
    assert "X-Repo: acme/api" in out
    assert "webhook-signature: (signed when sent)" in out
    assert f'{{"after":"{GITHUB_PUSH["after"]}"}}' in out

    sample = tmp_path / "tag.json"
    sample.write_text(json.dumps({**GITHUB_PUSH, "ref": "refs/tags/v1"}))
    out = ok(relay("subscriptions", "preview", sub_id, "--body", str(sample)))
    assert out.strip() == 'Not delivered: body ref eq "refs/heads/main"'

    result = as_json(relay(
        "subscriptions", "preview", "--body", "-", "--header", "X-GitHub-Event: push",
        "--filter", '{"header": "X-GitHub-Event", "eq": "push"}',
        "--transform", '{"body": "[ref, [@, @]]"}', "--json", input=json.dumps({"ref": "x"}),
    ))  # fmt: skip
    assert result["matched"] is True
    assert json.loads(result["body"]) == ["x", [{"ref": "x"}, {"ref": "x"}]]

    assert "give one of --event or --body" in failed(relay("subscriptions", "preview", sub_id), 2)
    err = failed(relay("subscriptions", "preview", "--event", event_id, "--filter", '{"x": 1}'))
    assert "x: unknown operator" in err
