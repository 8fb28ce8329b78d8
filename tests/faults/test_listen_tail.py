"""`relay listen` and `relay tail` as a developer runs them: real `relay serve`, `relay
worker`, Redis and CLI processes, and a real HTTP server as the laptop's app."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
import standardwebhooks

from relay.devtools.processes import relay_command
from relay.devtools.receiver import Receiver, Reply
from tests.faults.harness import RelayStack, post_keyed, wait_until


@pytest.fixture
def app() -> Iterator[Receiver]:
    """The laptop's app."""
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()


def _relay(stack: RelayStack, **env: str) -> str:
    base = stack.start_api(**env)
    stack.put_source()
    stack.start_worker(**env)
    stack.wait_ready()
    return base


def _cli(stack: RelayStack, name: str, base: str, *args: str) -> None:
    command = [*relay_command(args[0]), *args[1:], "--url", base, "--token", stack.token]
    stack.group.spawn(name, command, stack.env)


def _listen(stack: RelayStack, name: str, base: str, forward: str, *extra: str) -> str:
    """Start `relay listen`; the listener's subscription id once it is connected."""
    _cli(stack, name, base, "listen", "--source", "github", "--forward", forward, *extra)
    wait_until(lambda: "Listening to github as" in stack.log(name), 20, f"{name} listening")
    found = re.search(r"Listening to github as (sub_\w+)", stack.log(name))
    assert found
    return found.group(1)


def _secret(stack: RelayStack, name: str) -> str:
    found = re.search(r"verify\): (\S+)", stack.log(name))
    assert found, stack.log(name)
    return found.group(1)


def _delivery(stack: RelayStack, sub_id: str) -> dict[str, Any]:
    listed = stack.admin("GET", f"/api/deliveries?subscription_id={sub_id}")["data"]
    assert len(listed) == 1, listed
    delivery: dict[str, Any] = stack.admin("GET", f"/api/deliveries/{listed[0]['id']}")
    return delivery


def test_listen_forwards_signed_deliveries_and_records_the_local_answer(
    stack: RelayStack, app: Receiver
) -> None:
    base = _relay(stack)
    sub_id = _listen(stack, "listen", base, app.url + "/webhooks")
    # The app fails once: retried on the relay's schedule, like any subscriber.
    app.script(Reply(500, body=b"boom"), Reply(201, body=b"created here"))
    with stack.client() as client:
        key, answer = post_keyed(client)
    assert answer.status_code == 202
    got = app.wait_for(2, timeout_s=20)
    assert [r.headers["x-relay-attempt"] for r in got] == ["1", "2"]
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    for request in got:
        assert request.path.endswith("/webhooks")
        assert key.encode() in request.body
        standardwebhooks.Webhook(_secret(stack, "listen")).verify(request.body, request.headers)
        assert request.headers["x-relay-event-type"] == "push"

    def recorded() -> bool:
        return _delivery(stack, sub_id)["status"] == "succeeded"

    wait_until(recorded, 10, "the local answers recorded as the attempts")
    attempts = _delivery(stack, sub_id)["attempt_log"]
    assert [(a["status_code"], a["response_excerpt"], a["outcome"]) for a in attempts] == [
        (500, "boom", "failed"),
        (201, "created here", "succeeded"),
    ]
    assert all(a["duration_ms"] >= 0 for a in attempts)
    log = stack.log("listen")
    assert re.search(r"\d\d:\d\d:\d\d  push\s+500\s+[\d.]+ ms  dlv_\w+\n", log), log
    assert re.search(r"  push\s+201\s+[\d.]+ ms  dlv_\w+ \(attempt 2\)", log), log
    # The workers never sent it themselves: the app got exactly these two requests.
    assert len(app.requests) == 2

    # Ctrl-C: exit 0, no traceback, the listener removed.
    stack.group.signal("listen", signal.SIGINT)
    wait_until(lambda: not stack.alive("listen"), 10, "listen exits on SIGINT")
    assert stack.group.procs["listen"].returncode == 0
    assert "Traceback" not in stack.log("listen")
    with stack.client() as client:
        assert client.get(f"/api/subscriptions/{sub_id}").status_code == 404


def test_listen_resumes_after_a_dropped_connection_without_loss(
    stack: RelayStack, app: Receiver
) -> None:
    base = _relay(stack)
    sub_id = _listen(stack, "listen", base, app.url)
    stack.kill("listen")  # the laptop sleeps: no goodbye
    with stack.client() as client:
        keys = [post_keyed(client)[0] for _ in range(5)]
    # The events wait in the lane: nothing goes to the app, and nothing is given up.
    wait_until(lambda: "ingest.accepted" in stack.log("api"), 5, "accepted")
    assert app.requests == []
    _listen(stack, "listen2", base, app.url, "--listener", sub_id)
    got = app.wait_for(5, timeout_s=20)
    assert sorted(k for k in keys if any(k.encode() in r.body for r in got)) == sorted(keys)


def test_a_stream_dropped_mid_delivery_delivers_it_again(stack: RelayStack, app: Receiver) -> None:
    # The app hangs on the first request; the CLI dies meanwhile; the claim runs out.
    base = _relay(stack, RELAY_DELIVERY_TIMEOUT_S="1")
    sub_id = _listen(stack, "listen", base, app.url)
    app.script(Reply(200, delay_s=3))
    with stack.client() as client:
        key, _ = post_keyed(client)
    app.wait_for(1, timeout_s=20)
    stack.kill("listen")
    _listen(stack, "listen2", base, app.url, "--listener", sub_id)
    got = app.wait_for(2, timeout_s=30)
    assert all(key.encode() in r.body for r in got)
    wait_until(lambda: _delivery(stack, sub_id)["status"] == "succeeded", 20, "recorded")


def test_the_relay_api_dying_mid_delivery_loses_nothing(stack: RelayStack, app: Receiver) -> None:
    # The API process holding the stream is killed while the app is answering; the CLI
    # reconnects to its restart on its own, and the claim, run out, is delivered again.
    base = _relay(stack, RELAY_DELIVERY_TIMEOUT_S="1")
    sub_id = _listen(stack, "listen", base, app.url)
    app.script(Reply(200, delay_s=2))
    with stack.client() as client:
        key, _ = post_keyed(client)
    app.wait_for(1, timeout_s=20)
    stack.kill("api")
    assert stack.start_api(RELAY_DELIVERY_TIMEOUT_S="1") == base
    got = app.wait_for(2, timeout_s=40)
    assert all(key.encode() in r.body for r in got)
    wait_until(lambda: _delivery(stack, sub_id)["status"] == "succeeded", 20, "recorded")
    log = stack.log("listen")
    assert "connection lost" in log, log
    assert "reconnected" in log, log
    assert stack.alive("listen")


def test_two_listeners_each_get_every_event(stack: RelayStack, app: Receiver) -> None:
    base = _relay(stack)
    other = Receiver()
    try:
        first = _listen(stack, "one", base, app.url)
        second = _listen(stack, "two", base, other.url)
        assert first != second
        with stack.client() as client:
            key, _ = post_keyed(client)
        assert key.encode() in app.wait_for(1, timeout_s=20)[0].body
        assert key.encode() in other.wait_for(1, timeout_s=20)[0].body
    finally:
        other.close()


def test_a_listener_gone_past_the_grace_period_is_removed_with_its_lane(
    stack: RelayStack, app: Receiver
) -> None:
    base = _relay(stack, RELAY_LISTEN_GRACE_S="1", RELAY_RECOVERY_INTERVAL_S="1")
    sub_id = _listen(stack, "listen", base, app.url)
    stack.kill("listen")
    with stack.client() as client:
        post_keyed(client)

    def removed() -> bool:
        with stack.client() as client:
            return client.get(f"/api/subscriptions/{sub_id}").status_code == 404

    wait_until(removed, 20, "the silent listener removed")
    # What waited in its lane is closed, visibly, and never sent.
    wait_until(lambda: _delivery(stack, sub_id)["status"] == "dead", 20, "its lane closed")
    assert _delivery(stack, sub_id)["last_error"].startswith("SubscriptionDeleted")
    assert app.requests == []
    _cli(stack, "again", base, "listen", "--source", "github", "--forward", app.url,
         "--listener", sub_id)  # fmt: skip
    wait_until(lambda: not stack.alive("again"), 20, "re-attaching fails")
    assert "404" in stack.log("again")


def test_tail_prints_events_and_failed_deliveries_and_stops_on_ctrl_c(
    stack: RelayStack, app: Receiver
) -> None:
    base = _relay(stack)
    app.default = Reply(503)
    stack.subscribe(app.url, retry={"max_attempts": 1})
    _cli(stack, "tail", base, "tail")
    _cli(stack, "failed", base, "tail", "--status", "failed")
    for name in ("tail", "failed"):
        wait_until(lambda n=name: "Tailing" in stack.log(n), 20, f"{name} connected")  # type: ignore[misc]
    time.sleep(1.5)  # publishers look for a tail once a second
    with stack.client() as client:
        _, answer = post_keyed(client)
    event_id = answer.json()["event_id"]
    wait_until(lambda: "dead" in stack.log("tail"), 20, "the failed attempt tailed")
    log = stack.log("tail")
    assert re.search(rf"github\s+push\s+received\s+{event_id}", log), log
    assert re.search(r"github\s+push\s+dead\s+503\s+[\d.]+ ms  dlv_\w+ #1", log), log
    wait_until(lambda: "dead" in stack.log("failed"), 20, "failed-only tail")
    assert "received" not in stack.log("failed")
    # The relay restarts: the tail reconnects on its own and goes on.
    stack.kill("api")
    stack.start_api()
    wait_until(lambda: "reconnected" in stack.log("tail"), 30, "tail reconnected")
    time.sleep(1.5)
    with stack.client() as client:
        _, answer = post_keyed(client)
    again = answer.json()["event_id"]
    wait_until(lambda: again in stack.log("tail"), 20, "tailing after the restart")
    for name in ("tail", "failed"):
        stack.group.signal(name, signal.SIGINT)
        wait_until(lambda n=name: not stack.alive(n), 10, f"{name} exits")  # type: ignore[misc]
        assert stack.group.procs[name].returncode == 0
        assert "Traceback" not in stack.log(name)


def test_tail_refuses_unknown_status(stack: RelayStack) -> None:
    base = _relay(stack)
    _cli(stack, "tail", base, "tail", "--status", "nope")
    wait_until(lambda: not stack.alive("tail"), 20, "exits")
    assert stack.group.procs["tail"].returncode == 2
    assert "error: --status takes 'failed'" in stack.log("tail")
