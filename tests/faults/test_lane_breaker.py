"""A lane's circuit breaker and holds against real receivers, with real ``relay serve`` and
``relay worker`` processes: a flaky receiver keeps its throughput, a down one gets probes,
and every operator action that says "go now" releases a held lane at once."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import httpx
import pytest

from relay.devtools.processes import relay_command
from relay.devtools.receiver import Receiver, Reply
from tests.faults.harness import RelayStack, wait_until


def post(base: str, count: int, first: int = 0) -> list[str]:
    """POST webhooks ``first`` .. ``first + count - 1``; their event ids."""
    ids = []
    with httpx.Client(base_url=base, trust_env=False, timeout=10.0) as client:
        for seq in range(first, first + count):
            response = client.post(
                "/ingest/github",
                content=json.dumps({"seq": seq}).encode(),
                headers={"X-GitHub-Event": "push", "content-type": "application/json"},
            )
            assert response.status_code == 202, response.text
            ids.append(response.json()["event_id"])
    return ids


def seqs(receiver: Receiver) -> set[int]:
    return {json.loads(r.body)["seq"] for r in receiver.requests if b'"seq"' in r.body}


def lane(stack: RelayStack, sub_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = stack.admin("GET", f"/api/subscriptions/{sub_id}")["lane"]
    return shown


def start(stack: RelayStack, receiver: Receiver, **spec: Any) -> tuple[str, str]:
    base = stack.start_api()
    stack.put_source()
    sub_id: str = stack.subscribe(receiver.url, **spec)["id"]
    stack.start_worker()
    stack.wait_ready()
    return base, sub_id


def test_a_receiver_failing_a_fifth_of_the_time_never_holds_its_lane(
    stack: RelayStack, receiver: Receiver
) -> None:
    stack.env.update(RELAY_RETRY__MAX_ATTEMPTS="20")
    base, sub_id = start(stack, receiver)
    receiver.script(*([200, 200, 503, 200, 200] * 40))

    post(base, 150)

    wait_until(lambda: seqs(receiver) == set(range(150)), 30, "150 webhooks delivered")
    assert "lane.breaker_opened" not in stack.log("worker")
    shown = lane(stack, sub_id)
    assert shown["breaker"] == "closed"
    assert shown["held_until"] is None
    assert 0.1 <= shown["recent_failure_rate"] <= 0.3, shown


def test_a_down_receiver_gets_probes_not_the_backlog_and_closes_the_breaker_when_back(
    stack: RelayStack, receiver: Receiver
) -> None:
    # 16 at a time (not the default 32): the round in flight when the breaker opens lands
    # in the window below, and the bound counts one such round.
    stack.env.update(RELAY_RETRY__MAX_ATTEMPTS="100", RELAY_RETRY__MAX_WAIT_S="0.5",
                     RELAY_MAX_CONCURRENCY_PER_SUBSCRIPTION="16")  # fmt: skip
    receiver.default = Reply(status=503)
    base, sub_id = start(stack, receiver)

    post(base, 60)
    wait_until(lambda: lane(stack, sub_id)["breaker"] != "closed", 20, "the breaker opens")
    shown = lane(stack, sub_id)
    assert shown["backlog"] + shown["in_flight"] == 60
    assert shown["recent_failure_rate"] == 1.0
    if shown["held_until"] is not None:
        assert shown["hold_reason"].startswith("circuit breaker open: "), shown
    # Down for 3 s more: three probes at a time, at most every 0.5 s (the longest wait),
    # give or take a round at each end; without the breaker, 16 at a time every 0.05-0.5 s.
    before = len(receiver.requests)
    time.sleep(3)
    probes = len(receiver.requests) - before
    assert probes <= 3 * (3 / 0.5 + 3), probes
    assert "lane.breaker_opened" in stack.log("worker")

    receiver.default = Reply(status=200)
    wait_until(lambda: seqs(receiver) == set(range(60)), 20, "all 60 delivered once it is back")
    wait_until(lambda: lane(stack, sub_id)["backlog"] == 0, 10, "the backlog drains")
    assert lane(stack, sub_id)["breaker"] == "closed"
    assert "lane.breaker_closed" in stack.log("worker")


RELEASES = ["test", "retry", "resume", "dead_letter_replay"]
HELD = "because the receiver answered 503 with Retry-After"


def assert_hold_shown(stack: RelayStack, base: str, sub_id: str, event_id: str) -> None:
    """The CLI and the dashboard say the lane is held, and why, rather than "due now"."""
    env = {**stack.env, "RELAY_URL": base}
    shown = subprocess.run(
        [*relay_command("subscriptions"), "show", sub_id],
        env={**env, "COLUMNS": "300"}, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "held until" in shown.stdout, shown.stdout
    assert HELD in shown.stdout, shown.stdout
    with httpx.Client(base_url=base, trust_env=False, timeout=10) as ui:
        ui.post("/ui/login", data={"token": stack.token})
        for page in ("/ui/subscriptions", f"/ui/events/{event_id}"):
            html = ui.get(page).text
            assert "held until" in html, page
            assert HELD in html, page


@pytest.mark.parametrize("action", RELEASES)
def test_an_operators_word_releases_a_held_lane_at_once(
    stack: RelayStack, receiver: Receiver, action: str
) -> None:
    # Retry-After is honoured up to the longest wait: 10 minutes here.
    stack.env.update(RELAY_RETRY__MAX_WAIT_S="600")
    base, sub_id = start(stack, receiver)
    # The first webhook is refused for good (a dead letter), the second is told to come
    # back in ten minutes: the whole lane holds.
    receiver.script(422, Reply(status=503, headers={"Retry-After": "600"}))
    [dead_event] = post(base, 1)
    receiver.wait_for(1)
    [held_event] = post(base, 1, first=1)
    receiver.wait_for(2)
    wait_until(lambda: lane(stack, sub_id)["held_until"] is not None, 10, "the lane holds")
    shown = lane(stack, sub_id)
    assert shown["hold_reason"] == "the receiver answered 503 with Retry-After"
    assert shown["backlog"] == 1

    if action == "resume":
        assert_hold_shown(stack, base, sub_id, held_event)

    if action == "test":
        answer = stack.admin("POST", f"/api/subscriptions/{sub_id}/test")
        assert answer["status"] == "succeeded"
    elif action == "retry":
        event = stack.admin("GET", f"/api/events/{held_event}")
        [delivery] = event["deliveries"]
        stack.admin("POST", f"/api/deliveries/{delivery['id']}/retry")
    elif action == "resume":
        stack.admin("POST", f"/api/subscriptions/{sub_id}/pause")
        stack.admin("POST", f"/api/subscriptions/{sub_id}/resume")
    else:
        assert stack.admin("POST", "/api/dead-letters/replay")["requeued"] == 1

    wait_until(lambda: 1 in {s for s in seqs(receiver) if s == 1} and
               sum(json.loads(r.body).get("seq") == 1 for r in receiver.requests) == 2,
               10, f"the held webhook goes out at once after {action}")  # fmt: skip
    assert lane(stack, sub_id)["held_until"] is None
    if action == "dead_letter_replay":
        wait_until(lambda: sum(json.loads(r.body).get("seq") == 0 for r in receiver.requests)
                   == 2, 10, "the dead letter goes again")  # fmt: skip
    del dead_event
