"""What a new user hits first with the admin CLI, at 80 columns, against a real relay.

Warnings the API gives are shown, tables keep what matters, `subscriptions update` and the
delivery options, source verification options, confirmation before destroying, a URL
without a scheme, YAML errors with a line, filters naming nothing that exists, readable help.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import typer
import typer.main

from relay.devtools.receiver import Receiver
from tests.cli import test_cli as base
from tests.cli.test_cli import Cli, as_json, failed, ingest, ok, setup_github
from tests.conftest import ADMIN_TOKEN, WorkerRun

# The relay, the CLI and plain HTTP to the same relay, as in test_cli.
relay_url = base.relay_url
app = base.app
relay = base.relay
http = base.http

NARROW = {"COLUMNS": "80"}
# `.invalid` never resolves (RFC 2606): the API accepts the URL with a warning.
UNRESOLVED = "https://hooks.nosuch.invalid/x"


def rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("│")]


def headers(out: str) -> list[str]:
    [line] = [line for line in out.splitlines() if line.startswith("┃")][:1]
    return [cell.strip() for cell in line.strip("┃").split("┃")]


# --- warnings ------------------------------------------------------------------------------


def test_create_update_and_apply_print_the_apis_warnings(
    relay: Cli, receiver: Receiver, tmp_path: Path
) -> None:
    sub_id = setup_github(relay, receiver)
    created = relay("subscriptions", "create", "--url", UNRESOLVED, "--source", "github")
    assert ok(created)
    assert "warning: hooks.nosuch.invalid does not resolve" in created.stderr

    updated = relay("subscriptions", "update", sub_id, "--url", UNRESOLVED)
    assert f"Updated subscription {sub_id} (url)." in ok(updated)
    assert "warning: hooks.nosuch.invalid does not resolve" in updated.stderr

    file = tmp_path / "relay.yaml"
    file.write_text(f"subscriptions:\n  far:\n    url: {UNRESOLVED}\n    sources: [github]\n")
    applied = ok(relay("apply", str(file)))
    assert "subscription far" in applied
    assert "  warning: hooks.nosuch.invalid does not resolve" in applied


# --- tables at 80 columns --------------------------------------------------------------------


def test_lists_at_80_columns_keep_the_columns_that_matter(
    relay: Cli, http: httpx.Client, receiver: Receiver
) -> None:
    setup_github(relay, receiver)
    relay(
        "subscriptions",
        "create",
        "--url",
        "http://127.0.0.1:9/a/very/long/path/that/cannot/fit/in/eighty/columns/at/all",
        "--source",
        "github",
        "--description",
        "refused on purpose",
    )
    receiver.script(503)
    event_id = ingest(http)
    base.deliveries_of(http, event_id, 2)
    http.post(f"/api/deliveries/{base.deliveries_of(http, event_id, 2)[0]['id']}/retry")

    events = ok(relay("events", "list", env=NARROW))
    assert headers(events)[:4] == ["ID", "Received", "Source", "Type"]
    assert all(len(line) <= 80 for line in events.splitlines())
    [row] = rows(events)
    assert event_id in row
    assert "github" in row
    assert "push" in row

    subs = ok(relay("subscriptions", "list", env=NARROW))
    assert headers(subs) == ["ID", "Description", "URL", "State"]
    assert all(len(line) <= 80 for line in subs.splitlines())
    long_row = next(line for line in rows(subs) if "refused" in line)
    assert "http://127.0.0.1:9/" in long_row
    assert "…" in long_row  # cut, not wrapped onto a second line
    assert "active" in long_row
    assert len(rows(subs)) == 2

    deliveries = ok(relay("deliveries", "list", env=NARROW))
    assert headers(deliveries) == ["ID", "Status", "Tries", "Code", "Last error"]
    assert all(len(line) <= 80 for line in deliveries.splitlines())


# --- subscriptions update, delivery options, source verification ------------------------------


def test_create_and_update_take_the_delivery_options(
    relay: Cli, http: httpx.Client, receiver: Receiver
) -> None:
    setup_github(relay, receiver)
    created = as_json(
        relay(
            "subscriptions",
            "create",
            "--url",
            receiver.url,
            "--source",
            "github",
            "--retry",
            "5",
            "--timeout",
            "2.5",
            "--rate-limit",
            "10",
            "--max-concurrency",
            "3",
            "--json",
        )
    )
    sub = http.get(f"/api/subscriptions/{created['id']}").json()
    assert sub["retry"]["max_attempts"] == 5
    assert (sub["timeout_s"], sub["rate_limit"], sub["max_concurrency"]) == (2.5, 10, 3)

    changed = relay(
        "subscriptions",
        "update",
        created["id"],
        "--retry",
        "max_attempts=8,initial_s=1.5",
        "--max-concurrency",
        "1",
        "--description",
        "billing",
        env=NARROW,
    )
    out = " ".join(ok(changed).split())
    assert "(description, max_concurrency, retry)" in out
    sub = http.get(f"/api/subscriptions/{created['id']}").json()
    assert sub["retry"]["max_attempts"] == 8
    assert sub["retry"]["initial_s"] == 1.5
    assert (sub["max_concurrency"], sub["description"], sub["timeout_s"]) == (1, "billing", 2.5)
    json_retry = relay("subscriptions", "update", created["id"], "--retry", '{"max_age_s": 60}')
    assert ok(json_retry)
    assert http.get(f"/api/subscriptions/{created['id']}").json()["retry"]["max_age_s"] == 60

    assert "nothing to change" in failed(relay("subscriptions", "update", created["id"]), 2)
    assert "--retry" in failed(relay("subscriptions", "update", created["id"], "--retry", "x"), 2)
    too_fast = relay("subscriptions", "update", created["id"], "--timeout", "600")
    assert failed(too_fast).startswith("error: 422 ")
    assert "sub_nope" in failed(relay("subscriptions", "update", "sub_nope", "--timeout", "1"))


def test_sources_put_takes_verification_options(
    relay: Cli, http: httpx.Client, tmp_path: Path
) -> None:
    secret_file = tmp_path / "github-secret"
    secret_file.write_text("s3cret-from-file\n")
    put = relay(
        "sources",
        "put",
        "github",
        "--verification",
        "github",
        "--secret",
        f"@{secret_file}",
        "--secret",
        "second-secret",
    )
    assert "s3cret" not in ok(put)
    source = http.get("/api/sources/github").json()
    assert source["verification"] == {"scheme": "github", "secret_count": 2}
    body = b'{"ok":true}'
    assert http.post("/ingest/github", content=body).status_code == 401
    accepted = http.post(
        "/ingest/github", content=body, headers=base.signed("s3cret-from-file", body)
    )
    assert accepted.status_code == 202

    hmac_source = relay(
        "sources",
        "put",
        "acme",
        "--verification",
        "hmac",
        "--secret",
        "k",
        "--signature-header",
        "X-Acme-Signature",
        "--encoding",
        "base64",
        "--signature-prefix",
        "sha256=",
    )
    ok(hmac_source)
    config = http.get("/api/sources/acme").json()["verification"]
    assert config["header"] == "X-Acme-Signature"
    assert (config["encoding"], config["prefix"]) == ("base64", "sha256=")

    lonely = relay("sources", "put", "x", "--secret", "k")
    assert "need --verification" in failed(lonely, 2)
    unknown = relay("sources", "put", "x", "--verification", "carrier-pigeon")
    assert unknown.exit_code == 2


def test_the_verification_choices_are_the_apis_schemes() -> None:
    from typing import get_args

    from relay.cli.commands.sources import Scheme
    from relay.domain.verification import VerificationConfig

    members = get_args(get_args(VerificationConfig)[0])
    schemes = {m.model_fields["scheme"].default for m in members}
    assert {s.value for s in Scheme} == schemes


# --- confirmation ----------------------------------------------------------------------------


def test_destructive_commands_refuse_without_a_terminal_or_yes(
    relay: Cli, http: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    sub_id = setup_github(relay, receiver)
    refused = relay("subscriptions", "delete", sub_id)
    assert failed(refused, 2) == (
        f"error: Delete subscription {sub_id}? Not without confirmation: pass --yes (no terminal)"
    )
    assert http.get(f"/api/subscriptions/{sub_id}").status_code == 200  # still there
    assert "pass --yes" in failed(relay("sources", "delete", "github"), 2)
    assert http.get("/api/sources/github").status_code == 200

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    pruning = relay("apply", str(empty), "--prune")
    assert "pass --yes" in failed(pruning, 2)
    assert f"subscription {sub_id}" in pruning.stderr  # says what it would delete
    assert len(http.get("/api/subscriptions").json()["data"]) == 1
    assert "Would be: 0 created" in ok(relay("apply", str(empty), "--prune", "--dry-run"))

    assert f"Deleted subscription {sub_id}." in ok(relay("subscriptions", "delete", sub_id, "-y"))
    assert "Deleted source github." in ok(relay("sources", "delete", "github", "--yes"))


def run_on_a_terminal(relay_url: str, tmp_path: Path, answer: str, *args: str) -> tuple[int, str]:
    """``relay ARGS`` with stdin and stderr on a pseudo-terminal, typing ``answer``."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "RELAY_URL": relay_url, "RELAY_ADMIN_TOKEN": ADMIN_TOKEN}
    env["RELAY_DATA_DIR"] = str(tmp_path / "no-relay-dev")
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", *args],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 20
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            seen += os.read(primary, 1024)
    os.write(primary, answer.encode() + b"\n")
    out, _ = proc.communicate(timeout=20)
    with_rest = seen
    while select.select([primary], [], [], 0.1)[0]:
        try:
            chunk = os.read(primary, 1024)
        except OSError:
            break
        if not chunk:
            break
        with_rest += chunk
    os.close(primary)
    return proc.returncode, (with_rest + out).decode(errors="replace")


def test_on_a_terminal_it_asks_first(
    relay: Cli, http: httpx.Client, receiver: Receiver, relay_url: str, tmp_path: Path
) -> None:
    sub_id = setup_github(relay, receiver)
    code, said = run_on_a_terminal(relay_url, tmp_path, "n", "subscriptions", "delete", sub_id)
    assert code == 1
    assert f"Delete subscription {sub_id}? [y/N]" in said
    assert "cancelled, nothing changed" in said
    assert http.get(f"/api/subscriptions/{sub_id}").status_code == 200

    code, said = run_on_a_terminal(relay_url, tmp_path, "y", "subscriptions", "delete", sub_id)
    assert code == 0, said
    assert f"Deleted subscription {sub_id}." in said
    assert http.get(f"/api/subscriptions/{sub_id}").status_code == 404


async def test_an_unfiltered_dead_letter_replay_asks_a_filtered_one_does_not(
    relay: Cli, http: httpx.Client, receiver: Receiver, run_worker: WorkerRun
) -> None:
    sub_id = setup_github(relay, receiver)
    receiver.script(*[500] * 4)  # the tests' retry policy gives up after four
    ingest(http)
    await run_worker()
    assert http.get("/api/dead-letters").json()["total"] == 1
    refused = relay("replay", "dead-letters")
    assert "Requeue all 1 dead delivery (no --subscription or window)?" in failed(refused, 2)
    assert http.get("/api/dead-letters").json()["total"] == 1
    filtered = relay("replay", "dead-letters", "--subscription", sub_id)
    assert "Requeued 1 dead delivery." in ok(filtered)


# --- addresses, files, filters, help ----------------------------------------------------------


def test_a_relay_url_without_a_scheme_is_taken_as_http(relay: Cli, relay_url: str) -> None:
    bare = relay_url.removeprefix("http://")
    assert ok(relay("sources", "list", "--relay-url", bare, env={"RELAY_URL": None}))
    assert ok(relay("sources", "list", env={"RELAY_URL": bare}))


def test_a_yaml_error_says_where(relay: Cli, tmp_path: Path) -> None:
    file = tmp_path / "relay.yaml"
    file.write_text("sources:\n  github:\n    description: ok\n   oops: [\n")
    line = failed(relay("apply", str(file)), 2)
    assert line.startswith("error: cannot parse the file: line 4, column 4: ")
    toml = tmp_path / "relay.toml"
    toml.write_text("[sources.github]\ndescription = \n")
    assert "line 2" in failed(relay("apply", str(toml)), 2)


def test_filters_naming_nothing_that_exists_fail(relay: Cli, receiver: Receiver) -> None:
    assert failed(relay("events", "list", "--source", "nosuch")) == (
        "error: 404 no source named 'nosuch'"
    )
    assert "sub_nope" in failed(relay("deliveries", "list", "--subscription", "sub_nope"))
    setup_github(relay, receiver)
    # A source that exists and has no events yet: an empty table, exit 0.
    assert ok(relay("events", "list", "--source", "github"))


def every_command(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in getattr(group, "commands", {}).items():
        found += every_command(sub, (*path, name))
    return found


def test_help_is_readable_everywhere(app: typer.Typer) -> None:
    from typer.testing import CliRunner

    root = typer.main.get_command(app)
    runner = CliRunner()
    for path in every_command(root):
        out = runner.invoke(app, [*path, "--help"], env=NARROW).stdout
        assert not re.search(r"<(bool|str|int|float|path|list\[[a-z]+\])>", out), (path, out)
        assert "{" not in out.split("Usage:")[1].splitlines()[0], (path, out)
    create = runner.invoke(app, ["subscriptions", "create", "--help"], env=NARROW).stdout
    assert re.search(r"--source\s+TEXT", create)
    assert re.search(r"--mode\s+\[reliable\|best_effort\]", create)
    assert re.search(r"--json\s+Print", create)  # a flag takes no value
    usage = runner.invoke(app, ["apply", "--help"], env=NARROW).stdout
    # Docstring paragraphs are reflowed to the terminal, not cut where the source broke them.
    lines = [line.strip() for line in usage.splitlines()]
    assert "by their" not in lines
    assert "apply [OPTIONS] FILE\n" in usage.replace(" \n", "\n").replace("  ", "")


# --- the relay's own events ----------------------------------------------------------------


def test_the_relays_own_events_are_left_out_unless_asked_for(
    relay: Cli, http: httpx.Client, receiver: Receiver
) -> None:
    sub_id = setup_github(relay, receiver)
    real = ingest(http)
    tested = as_json(relay("subscriptions", "test", sub_id, "--json"))
    # The test event's body says when in RFC 3339, as the README promises.
    sent = json.loads(receiver.wait_for(1)[-1].body)  # no worker here: only the test went
    assert sent["type"] == "relay.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", sent["sent_at"])

    listed = [e["id"] for e in as_json(relay("events", "list", "--json"))["data"]]
    assert listed == [real]
    api = [e["id"] for e in http.get("/api/events").json()["data"]]
    assert api == [real]
    everything = as_json(relay("events", "list", "--include-internal", "--json"))["data"]
    assert [e["id"] for e in everything] == [tested["event_id"], real]
    both = http.get("/api/events", params={"include_internal": "true"}).json()["data"]
    assert len(both) == 2
    # Naming the source is asking for them.
    own = as_json(relay("events", "list", "--source", "_relay", "--json"))["data"]
    assert [e["id"] for e in own] == [tested["event_id"]]
