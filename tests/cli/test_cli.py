"""The SRE commands against the real API (uvicorn on a free port), real Redis, real worker."""

from __future__ import annotations

import hashlib
import hmac
import importlib.metadata
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import httpx
import pytest
import structlog
import typer
import uvicorn
from typer.testing import CliRunner, Result

from config.settings import Settings
from relay import cli
from relay.api.app import create_app
from relay.devtools.receiver import Receiver, Reply
from tests.conftest import ADMIN_TOKEN, AUTH, WorkerRun

Cli = Callable[..., Result]


# --- the relay, the CLI ----------------------------------------------------------------------


class _Pinned:
    """A stream that stays put (structlog prints to the *current* stdout if given it)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


@pytest.fixture
def relay_url(settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn in a thread with its own event loop.

    The relay's logs go to the stdout of now (pytest's capture): CliRunner swaps sys.stdout
    while a command runs, and lines the server thread logs meanwhile would land in the
    command's output.
    """
    logger_factory = structlog.get_config()["logger_factory"]
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Pinned(sys.stdout)))
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the relay did not start"
            assert time.monotonic() < deadline, "the relay did not start in time"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        structlog.configure(logger_factory=logger_factory)


@pytest.fixture
def app() -> typer.Typer:
    """`relay` as shipped (its admin commands included)."""
    return cli.app


@pytest.fixture
def relay(app: typer.Typer, relay_url: str, tmp_path: Path) -> Cli:
    """``relay("events", "list")``: runs the command with RELAY_URL and RELAY_ADMIN_TOKEN
    (and a RELAY_DATA_DIR of its own: a `relay dev` token of the developer's is not read)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str | None] | None = None, **kwargs: Any) -> Result:
        base: dict[str, str | None] = {"RELAY_URL": relay_url, "RELAY_ADMIN_TOKEN": ADMIN_TOKEN}
        base["RELAY_DATA_DIR"] = str(tmp_path / "no-relay-dev")
        # Tables print whole unless a test sets a width: the caller's terminal (or pytest-xdist,
        # which sets COLUMNS=80 in its workers) must not drop the columns a test reads.
        base["COLUMNS"] = None
        return runner.invoke(app, list(args), env={**base, **(env or {})}, **kwargs)

    return run


@pytest.fixture
def http(relay_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the same relay, to set the scene and to check what the CLI did."""
    with httpx.Client(base_url=relay_url, headers=AUTH, timeout=10) as client:
        yield client


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    """The one line a failure prints."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def as_json(result: Result) -> Any:
    return json.loads(ok(result))


def ingest(http: httpx.Client, body: bytes = b'{"ref":"main"}', **headers: str) -> str:
    """A webhook for the source github; header names with dashes as X_GitHub_Event."""
    sent = {"X-GitHub-Event": "push", "content-type": "application/json"}
    sent |= {name.replace("_", "-"): value for name, value in headers.items()}
    r = http.post("/ingest/github", content=body, headers=sent)
    assert r.status_code == 202, r.text
    event_id: str = r.json()["event_id"]
    return event_id


def deliveries_of(http: httpx.Client, event_id: str, count: int = 1) -> list[dict[str, Any]]:
    """Fan-out runs after the 202: wait until the event has its deliveries."""
    deadline = time.monotonic() + 5
    while True:
        deliveries: list[dict[str, Any]] = http.get(f"/api/events/{event_id}").json()["deliveries"]
        if len(deliveries) >= count:
            return deliveries
        assert time.monotonic() < deadline, f"{event_id} has {len(deliveries)} deliveries"
        time.sleep(0.02)


def setup_github(relay: Cli, receiver: Receiver) -> str:
    """A source and a subscription made with the CLI; returns the subscription id."""
    ok(relay("sources", "put", "github", "--event-type-header", "X-GitHub-Event"))
    create = ("subscriptions", "create", "--url", receiver.url, "--source", "github", "--json")
    sub = as_json(relay(*create))
    sub_id: str = sub["id"]
    return sub_id


# --- sources -------------------------------------------------------------------------------


def test_sources_put_list_show_delete(relay: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "github.json"
    spec.write_text(json.dumps({"verification": {"scheme": "github", "secrets": ["s3cret"]}}))

    created = ok(
        relay(
            "sources",
            "put",
            "github",
            "--file",
            str(spec),
            "--description",
            "GitHub org",
            "--idempotency-header",
            "X-GitHub-Delivery",
            "--max-body-bytes",
            "5000000",
        )
    )
    assert "Created source github." in created
    assert "5000000" in created  # shown among the details
    assert "s3cret" not in created
    assert "Updated source github." in ok(relay("sources", "put", "github", "--file", str(spec)))

    listed = ok(relay("sources", "list"))
    [row] = [line for line in listed.splitlines() if "github" in line]
    assert "github" in row
    assert "│ 1 " in row
    assert as_json(relay("sources", "list", "--json"))["data"][0]["name"] == "github"

    shown = ok(relay("sources", "show", "github"))
    assert "secret_count" in shown
    assert "s3cret" not in shown
    assert as_json(relay("sources", "show", "github", "--json"))["description"] == ""

    assert "Deleted source github." in ok(relay("sources", "delete", "github", "--yes"))
    assert failed(relay("sources", "show", "github")) == "error: 404 no source named 'github'"


def test_sources_put_reads_stdin(relay: Cli) -> None:
    body = json.dumps({"description": "from a pipe", "event_type_header": "X-Type"})
    ok(relay("sources", "put", "acme", "--file", "-", input=body))
    assert as_json(relay("sources", "show", "acme", "--json"))["event_type_header"] == "X-Type"


# --- subscriptions -------------------------------------------------------------------------


def test_subscription_create_shows_the_secret_once(
    relay: Cli, relay_url: str, receiver: Receiver
) -> None:
    ok(relay("sources", "put", "github"))
    out = ok(
        relay(
            "subscriptions",
            "create",
            "--relay-url",  # --url is the subscriber's here
            relay_url,
            "--url",
            receiver.url,
            "--source",
            "github",
            "--event-type",
            "push",
            "--event-type",
            "pull_request.*",
            "--mode",
            "best_effort",
            "--description",
            "billing",
            "--header",
            "X-Team: payments",
            "--header",
            "X-Webhook-Auth: hunter2",
            "--public-header",
            "X-Team",
            env={"RELAY_URL": None},
        )
    )
    [secret_line] = [line for line in out.splitlines() if line.startswith("Secret (shown once): ")]
    secret = secret_line.removeprefix("Secret (shown once): ")
    assert secret.startswith("whsec_")

    [sub] = as_json(relay("subscriptions", "list", "--json"))["data"]
    assert sub["event_types"] == ["push", "pull_request.*"]
    assert sub["mode"] == "best_effort"
    assert sub["headers"] == {"X-Team": "payments", "X-Webhook-Auth": "[REDACTED]"}
    assert "secret" not in sub

    listed = ok(relay("subscriptions", "list"))
    assert sub["id"] in listed
    assert receiver.url in listed
    assert "active" in listed
    shown = ok(relay("subscriptions", "show", sub["id"]))
    assert "billing" in shown
    assert "X-Team" in shown
    assert secret not in shown


def test_subscription_rotate_pause_resume_delete(relay: Cli, receiver: Receiver) -> None:
    sub_id = setup_github(relay, receiver)

    rotated = ok(relay("subscriptions", "rotate-secret", sub_id))
    assert "Secret (shown once): whsec_" in rotated
    assert "previous secret also signs until" in rotated
    again = as_json(relay("subscriptions", "rotate-secret", sub_id, "--json"))
    assert again["secret"] not in rotated

    assert f"Subscription {sub_id} paused." in ok(relay("subscriptions", "pause", sub_id))
    assert "paused" in ok(relay("subscriptions", "list"))
    assert as_json(relay("subscriptions", "show", sub_id, "--json"))["paused"] is True
    assert as_json(relay("subscriptions", "resume", sub_id, "--json"))["paused"] is False

    assert f"Deleted subscription {sub_id}." in ok(
        relay("subscriptions", "delete", sub_id, "--yes")
    )
    assert (
        failed(relay("subscriptions", "show", sub_id)) == f"error: 404 no subscription {sub_id!r}"
    )


def test_subscription_test_reports_what_the_receiver_said(relay: Cli, receiver: Receiver) -> None:
    sub_id = setup_github(relay, receiver)
    receiver.script(Reply(status=503), Reply(status=400))

    failing = relay("subscriptions", "test", sub_id)
    assert failing.exit_code == 1
    assert "(503)" in failing.stdout
    rejected = relay("subscriptions", "test", sub_id, "--json")
    assert rejected.exit_code == 1
    assert json.loads(rejected.stdout)["status_code"] == 400
    result = as_json(relay("subscriptions", "test", sub_id, "--json"))
    assert (result["status"], result["status_code"]) == ("succeeded", 200)
    got = receiver.wait_for(3)
    assert got[2].headers["x-relay-event-type"] == "relay.test"

    # Nothing listens on port 9 of loopback: no answer at all is a failure too.
    ok(relay("subscriptions", "create", "--url", "http://127.0.0.1:9/", "--source", "github"))
    [dead_end] = [
        s
        for s in as_json(relay("subscriptions", "list", "--json"))["data"]
        if s["url"] == "http://127.0.0.1:9/"
    ]
    unreachable = relay("subscriptions", "test", dead_end["id"])
    assert unreachable.exit_code == 1
    assert "ConnectError" in unreachable.stdout


# --- events and deliveries ----------------------------------------------------------------


def test_events_list_filters_and_pages(relay: Cli, http: httpx.Client, receiver: Receiver) -> None:
    setup_github(relay, receiver)
    first = ingest(http)
    time.sleep(0.002)  # ids, and so "newest first", are ordered to the millisecond
    second = ingest(http, X_GitHub_Event="issues")
    ok(relay("sources", "put", "other"))
    assert http.post("/ingest/other", content=b"{}").status_code == 202

    listed = ok(relay("events", "list", "--source", "github"))
    assert first in listed
    assert second in listed
    assert "issues" in listed

    page = as_json(relay("events", "list", "--source", "github", "--limit", "1", "--json"))
    assert [e["id"] for e in page["data"]] == [second]  # newest first
    assert page["next_cursor"]
    assert "use --all" in ok(relay("events", "list", "--source", "github", "--limit", "1"))
    every = as_json(
        relay("events", "list", "--source", "github", "--limit", "1", "--all", "--json")
    )
    assert [e["id"] for e in every["data"]] == [second, first]
    assert every["next_cursor"] is None
    # Times print as the API writes them (to the second in lists), and go back into --since.
    received = every["data"][0]["received_at"]
    assert received[:19] + "Z" in ok(relay("events", "list", "--source", "github"))
    since = as_json(relay("events", "list", "--source", "github", "--since", received, "--json"))
    assert second in [e["id"] for e in since["data"]]

    # At 80 columns every id stays whole on its row's one line.
    narrow = ok(relay("events", "list", "--source", "github", env={"COLUMNS": "80"}))
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert [first in line or second in line for line in narrow.splitlines()].count(True) == 2

    typed = as_json(relay("events", "list", "--event-type", "issues", "--json"))
    assert [e["id"] for e in typed["data"]] == [second]
    future = as_json(relay("events", "list", "--since", "2999-01-01T00:00:00Z", "--json"))
    assert future["data"] == []


def test_events_show_and_body(relay: Cli, http: httpx.Client, receiver: Receiver) -> None:
    sub_id = setup_github(relay, receiver)
    r = http.post("/api/subscriptions", json={"url": receiver.url, "sources": ["github"],
                                              "event_types": ["issues"]})  # fmt: skip
    assert r.status_code == 201, r.text
    body = b'{"ref":"refs/heads/main","x":[1,2]}'
    event_id = ingest(http, body, X_GitHub_Delivery="abc-123")
    [delivery] = deliveries_of(http, event_id)

    shown = ok(relay("events", "show", event_id))
    assert event_id in shown
    assert "push" in shown
    assert "abc-123" in shown
    assert delivery["id"] in shown
    assert sub_id in shown
    assert "pending" in shown
    # The subscription for issues got none, and says why.
    missed = shown[shown.index("Not delivered") :]
    assert r.json()["id"] in missed
    assert "event_type" in missed
    assert "'push' matches none of: issues" in missed
    detail = as_json(relay("events", "show", event_id, "--json"))
    assert detail["deliveries"][0]["id"] == delivery["id"]

    raw = relay("events", "body", event_id)
    assert raw.exit_code == 0
    assert raw.stdout_bytes == body


async def test_deliveries_list_show_and_replays(
    relay: Cli, http: httpx.Client, receiver: Receiver, run_worker: WorkerRun
) -> None:
    sub_id = setup_github(relay, receiver)
    event_id = ingest(http)
    [delivery] = deliveries_of(http, event_id)
    await run_worker()
    receiver.wait_for(1)

    listed = ok(relay("deliveries", "list", "--subscription", sub_id))
    assert delivery["id"] in listed
    assert "succeeded" in listed
    none_dead = as_json(relay("deliveries", "list", "--status", "dead", "--json"))
    assert none_dead["data"] == []

    again = ok(relay("replay", "delivery", delivery["id"]))
    assert f"Delivery {delivery['id']} requeued (status pending)." in again
    replayed = as_json(relay("replay", "event", event_id, "--subscription", sub_id, "--json"))
    [new] = replayed["deliveries"]
    assert new["id"] != delivery["id"]
    everyone = ok(relay("replay", "event", event_id))
    assert "1 delivery queued" in everyone
    await run_worker()

    got = receiver.wait_for(4)
    assert {r.headers["webhook-id"] for r in got} == {event_id}
    shown = ok(relay("deliveries", "show", delivery["id"]))
    assert "manual" in shown
    assert "scheduled" in shown
    detail = as_json(relay("deliveries", "show", delivery["id"], "--json"))
    assert [a["trigger"] for a in detail["attempt_log"]] == ["scheduled", "manual"]


async def test_dead_letters_story(
    relay: Cli, http: httpx.Client, receiver: Receiver, run_worker: WorkerRun
) -> None:
    """A receiver fails until it is fixed; the SRE finds the dead deliveries, reads why,
    fixes the receiver and replays them."""
    sub_id = setup_github(relay, receiver)
    boom = Reply(status=500, body=b"upstream exploded [db down]")
    receiver.script(*[boom] * 8)  # two events, four attempts each (the test policy)
    events = [ingest(http, b'{"n":1}'), ingest(http, b'{"n":2}')]
    dead = [deliveries_of(http, e)[0]["id"] for e in events]
    await run_worker()

    listed = ok(relay("deliveries", "list", "--status", "dead"))
    assert all(d in listed for d in dead)
    assert "500" in listed
    shown = ok(relay("deliveries", "show", dead[0]))
    attempt_rows = [line for line in shown.splitlines() if "upstream exploded [db down]" in line]
    assert len(attempt_rows) == 4  # every attempt, with its code and response excerpt
    assert all("500" in row and "scheduled" in row for row in attempt_rows)
    detail = as_json(relay("deliveries", "show", dead[0], "--json"))
    assert [a["outcome"] for a in detail["attempt_log"]] == ["failed", "failed", "failed", "dead"]

    # The receiver is fixed (it answers 200 from now on).
    out = relay("replay", "dead-letters", "--subscription", sub_id, "--batch", "1")
    assert ok(out).strip().endswith("Requeued 2 dead deliveries.")
    assert "2/2" in out.stderr, out.stderr  # the progress bar counts
    await run_worker()

    got = receiver.wait_for(10)
    assert sorted(r.body for r in got[8:]) == [b'{"n":1}', b'{"n":2}']
    for delivery_id in dead:
        detail = as_json(relay("deliveries", "show", delivery_id, "--json"))
        assert detail["status"] == "succeeded"
        assert detail["attempt_log"][-1]["trigger"] == "manual"
    assert "succeeded" in ok(relay("deliveries", "show", dead[0]))
    nothing = as_json(relay("replay", "dead-letters", "--json"))
    assert nothing == {"requeued": 0, "remaining": 0}
    idle = relay("replay", "dead-letters")
    assert ok(idle).strip() == "Requeued 0 dead deliveries."
    assert idle.stderr == ""  # no empty progress bar


# --- failures --------------------------------------------------------------------------------


def test_unknown_ids_fail_with_the_api_reason(relay: Cli) -> None:
    assert failed(relay("deliveries", "show", "dlv_x")) == "error: 404 no delivery 'dlv_x'"
    assert failed(relay("events", "show", "evt_x")) == "error: 404 no event 'evt_x'"
    assert failed(relay("replay", "delivery", "dlv_x")) == "error: 404 no delivery 'dlv_x'"
    # Ids are path segments, never paths.
    assert failed(relay("events", "show", "../sources")).startswith("error: 404 ")


def test_bad_token_unreachable_relay_and_usage(relay: Cli, relay_url: str) -> None:
    bad = relay("subscriptions", "list", env={"RELAY_ADMIN_TOKEN": "wrong-token"})
    assert failed(bad) == "error: 401 a valid bearer token is required"
    assert "wrong-token" not in bad.output

    with_flag = relay("sources", "list", "--token", "another-wrong-one")
    assert failed(with_flag).startswith("error: 401 ")

    gone = relay("events", "list", "--url", "http://ops:pa55@127.0.0.1:9/")
    assert failed(gone) == "error: cannot reach relay at http://127.0.0.1:9: connection refused"
    assert "pa55" not in gone.output

    assert "no admin token" in failed(relay("sources", "list", env={"RELAY_ADMIN_TOKEN": None}), 2)
    broken = relay("sources", "list", env={"RELAY_ADMIN_TOKEN": "line\nbreak"})
    assert failed(broken, 2) == "error: the admin token has characters a header cannot carry"
    assert "--since" in failed(relay("deliveries", "list", "--since", "yesterday"), 2)
    bad_header = relay(
        "subscriptions", "create", "--url", "http://x/", "--source", "a", "--header", "no-colon"
    )
    assert "--header" in failed(bad_header, 2)
    invalid = relay("subscriptions", "create", "--url", "ftp://x/", "--source", "a")
    assert failed(invalid).startswith("error: 422 the request is not valid: body.url")

    helped = relay("events", "list", "--help")
    assert helped.exit_code == 0
    assert ADMIN_TOKEN not in helped.output


# --- apply -----------------------------------------------------------------------------------

TOML = """
[sources.github]
description = "GitHub org"
event_type_header = "X-GitHub-Event"
verification = { scheme = "github", secrets = ["${ENV:GH_SECRET}"] }

[sources.acme]
verification = { scheme = "none" }

[subscriptions.billing]
url = "RECEIVER"
sources = ["github"]
event_types = ["push"]
headers = { Authorization = "Bearer ${ENV:BILLING_TOKEN}" }
retry = { max_attempts = 3 }
"""

YAML = """
sources:
  github:
    event_type_header: X-GitHub-Event
    verification: {scheme: github, secrets: ["${ENV:GH_SECRET}"]}
subscriptions:
  billing:
    url: RECEIVER
    sources: [github]
"""

ENV = {"GH_SECRET": "gh-env-secret", "BILLING_TOKEN": "tok-123"}


def write(tmp_path: Path, receiver: Receiver, text: str = TOML, name: str = "relay.toml") -> str:
    path = tmp_path / name
    path.write_text(text.replace("RECEIVER", receiver.url))
    return str(path)


def signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def test_apply_twice_changes_nothing_the_second_time(
    relay: Cli, http: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    file = write(tmp_path, receiver)

    first = ok(relay("apply", file, env=ENV))
    assert first.strip().endswith("3 created, 0 updated, 0 unchanged")
    [secret] = [ln.split(": ")[1] for ln in first.splitlines() if "Secret (shown once)" in ln]
    assert secret.startswith("whsec_")
    assert "gh-env-secret" not in first
    assert "tok-123" not in first

    second = ok(relay("apply", file, env=ENV))
    assert second.strip().endswith("0 created, 0 updated, 3 unchanged")
    assert "Secret" not in second

    # What landed: the secret from the environment verifies GitHub's signature...
    body = b'{"zen":"hi"}'
    good = http.post("/ingest/github", content=body, headers=signed("gh-env-secret", body))
    assert good.status_code == 202
    forged = http.post("/ingest/github", content=body, headers=signed("other", body))
    assert forged.status_code == 401
    # ...and the subscription is keyed by its name, with the header from the environment.
    [sub] = http.get("/api/subscriptions").json()["data"]
    assert sub["description"] == "billing"
    assert sub["headers"] == {"Authorization": "[REDACTED]"}  # shown masked, stored as given
    assert sub["retry"]["max_attempts"] == 3
    r = http.post(f"/api/subscriptions/{sub['id']}/test")
    assert r.json()["status"] == "succeeded"
    assert receiver.wait_for(1)[-1].headers["authorization"] == "Bearer tok-123"


def test_apply_updates_in_place_and_dry_run_changes_nothing(
    relay: Cli, http: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    file = write(tmp_path, receiver)
    ok(relay("apply", file, env=ENV))
    [before] = http.get("/api/subscriptions").json()["data"]

    changed = TOML.replace('event_types = ["push"]', 'event_types = ["push", "issues"]')
    changed = changed.replace('description = "GitHub org"', 'description = "GitHub"')
    file = write(tmp_path, receiver, changed)
    plan = ok(relay("apply", file, "--dry-run", env=ENV))
    assert "subscription billing " + before["id"] + ": would update (event_types)" in plan
    assert "source github: would update (description)" in plan
    assert "source acme: unchanged" in plan
    assert plan.strip().endswith("Would be: 0 created, 2 updated, 1 unchanged")
    assert http.get("/api/subscriptions").json()["data"] == [before]

    done = as_json(relay("apply", file, "--json", env=ENV))
    assert (done["created"], done["updated"], done["unchanged"]) == (0, 2, 1)
    [after] = http.get("/api/subscriptions").json()["data"]
    assert after["id"] == before["id"]  # same subscription, same secret
    assert after["event_types"] == ["push", "issues"]
    assert "0 created, 0 updated, 3 unchanged" in ok(relay("apply", file, env=ENV))

    # A secret's value is write-only: only --push-secrets re-sends it.
    pushed = ok(relay("apply", file, "--push-secrets", env={**ENV, "GH_SECRET": "rotated"}))
    assert "source github: updated (verification.secrets)" in pushed
    body = b"{}"
    rotated = http.post("/ingest/github", content=body, headers=signed("rotated", body))
    assert rotated.status_code == 202


def test_apply_yaml_and_prune(
    relay: Cli, http: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    ok(relay("apply", write(tmp_path, receiver), env=ENV))
    by_hand = setup_github(relay, receiver)  # not in any file

    file = write(tmp_path, receiver, YAML, "relay.yaml")
    kept = ok(relay("apply", file, env=ENV))
    assert "acme" not in kept
    assert by_hand not in kept
    assert len(http.get("/api/subscriptions").json()["data"]) == 2

    pruned = ok(relay("apply", file, "--prune", "--yes", env=ENV))
    assert f"subscription (unnamed) {by_hand}: deleted" in pruned  # it has no description
    assert "source acme: deleted" in pruned
    assert pruned.strip().endswith("2 deleted")
    [sub] = http.get("/api/subscriptions").json()["data"]
    assert sub["description"] == "billing"
    assert [s["name"] for s in http.get("/api/sources").json()["data"]] == ["github"]
    # The YAML leaves event_types and retry out: back to the defaults.
    assert sub["event_types"] == ["*"]
    assert sub["retry"] is None


def test_apply_file_errors(
    relay: Cli, http: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    file = write(tmp_path, receiver)
    missing = relay("apply", file, env={"GH_SECRET": "gh-env-secret", "BILLING_TOKEN": None})
    assert failed(missing, 2) == "error: environment variable(s) not set: BILLING_TOKEN"
    assert "gh-env-secret" not in missing.output
    assert http.get("/api/sources").json()["data"] == []  # nothing was sent

    bad = write(tmp_path, receiver, TOML.replace("RECEIVER", "not a url"))
    assert failed(relay("apply", bad, env=ENV), 2).startswith("error: subscriptions.billing.url")
    # Credentials in the URL and an Authorization header: two Authorization headers.
    both = write(tmp_path, receiver, TOML.replace("RECEIVER", "http://u:p@127.0.0.1:9/"))
    refused = failed(relay("apply", both, env=ENV), 2)
    assert refused.startswith("error: subscriptions.billing")
    assert "keep one" in refused
    assert http.get("/api/subscriptions").json()["data"] == []
    assert "cannot read" in failed(relay("apply", str(tmp_path / "nope.toml")), 2)
    assert "unknown file type" in failed(relay("apply", write(tmp_path, receiver, "", "x.json")), 2)


def test_help_lists_every_command(app: typer.Typer) -> None:
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    commands = ("serve", "dev", "events", "deliveries", "replay", "subscriptions", "sources")
    for command in (*commands, "apply"):
        assert f" {command} " in out


@pytest.mark.parametrize(("access_log", "expected"), [(None, False), ("true", True)])
def test_serve_leaves_the_access_line_to_ingest_accepted_unless_asked(
    app: typer.Typer,
    monkeypatch: pytest.MonkeyPatch,
    redis_server_url: str,
    access_log: str | None,
    expected: bool,
) -> None:
    passed: dict[str, Any] = {}
    configured: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *_, **kwargs: passed.update(kwargs))
    # Recorded, not run: configuring the process's logging here would outlive the test.
    monkeypatch.setattr(
        "relay.observability.logs.configure", lambda *_, **kwargs: configured.update(kwargs)
    )
    # A Redis that answers: serve waits for one before it starts (RELAY_REDIS_START_TIMEOUT_S).
    env = {"RELAY_REDIS_URL": redis_server_url, "RELAY_ACCESS_LOG": access_log}
    result = CliRunner().invoke(app, ["serve"], env=env)
    assert result.exit_code == 0, result.output
    assert passed["access_log"] is configured["access_log"] is expected


# --- relay dev's token -----------------------------------------------------------------------


def test_a_relay_on_this_machine_is_asked_with_relay_devs_token(
    relay: Cli, relay_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    no_token = {"RELAY_ADMIN_TOKEN": None, "RELAY_DATA_DIR": str(data)}
    missing = failed(relay("sources", "list", env=no_token), 2)
    assert "RELAY_ADMIN_TOKEN" in missing
    assert str(data / "admin-token") in missing

    data.mkdir()
    (data / "admin-token").write_text(ADMIN_TOKEN + "\n")
    ok(relay("sources", "put", "github", env=no_token))
    assert "github" in ok(relay("sources", "list", env=no_token))
    # Spelled another way, still this machine.
    localhost = relay_url.replace("127.0.0.1", "localhost")
    assert "github" in ok(relay("sources", "list", "--url", localhost, env=no_token))

    # Another relay's token file: the refusal says where the token came from.
    (data / "admin-token").write_text("rly_stale\n")
    refused = failed(relay("sources", "list", env=no_token))
    assert refused.startswith("error: 401 ")
    assert str(data / "admin-token") in refused
    assert "rly_stale" not in refused
    # A given token wins over the file.
    assert "github" in ok(relay("sources", "list", env={"RELAY_DATA_DIR": str(data)}))

    # Never sent to a relay elsewhere: refused before any request is made.
    remote = relay("sources", "list", "--url", "http://relay.example.com:8000", env=no_token)
    assert "no admin token" in failed(remote, 2)


def test_version() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"relay {importlib.metadata.version('webhook-relay')}"
