"""FIFO order as a real receiver sees it, with real ``relay serve`` and ``relay worker``
processes: from a lane's very first claim, across a worker restart and with two workers."""

from __future__ import annotations

import itertools
import json

import httpx

from relay.devtools.receiver import Receiver
from tests.faults.harness import RelayStack, wait_until


def post_in_order(base: str, first: int, count: int) -> None:
    """POST webhooks ``first`` .. ``first + count - 1``, each after the one before got its 202."""
    with httpx.Client(base_url=base, trust_env=False, timeout=10.0) as client:
        for seq in range(first, first + count):
            response = client.post(
                "/ingest/github",
                content=json.dumps({"seq": seq}).encode(),
                headers={"X-GitHub-Event": "push", "content-type": "application/json"},
            )
            assert response.status_code == 202, response.text


def seqs_seen(receiver: Receiver) -> list[int]:
    return [json.loads(r.body)["seq"] for r in receiver.requests]


def assert_fifo(seen: list[int], count: int) -> None:
    """Each webhook arrives after every one accepted before it: a retry repeats the same
    one, never a later one first."""
    firsts = list(dict.fromkeys(seen))
    assert firsts == list(range(count)), seen
    assert all(b in (a, a + 1) for a, b in itertools.pairwise(seen)), seen


def test_fifo_holds_from_the_lanes_first_claim(stack: RelayStack, receiver: Receiver) -> None:
    base = stack.start_api()
    stack.put_source()
    stack.subscribe(receiver.url, ordering={"mode": "fifo"})
    stack.start_worker()
    stack.wait_ready()
    # Four 200s then a 503, over and over: the fifth of each run is retried before the next.
    receiver.script(*([200, 200, 200, 200, 503] * 12))

    post_in_order(base, 0, 30)

    wait_until(lambda: set(seqs_seen(receiver)) >= set(range(30)), 30, "30 webhooks delivered")
    assert_fifo(seqs_seen(receiver), 30)


def test_fifo_holds_across_a_worker_restart_a_pause_and_with_two_workers(
    stack: RelayStack, receiver: Receiver
) -> None:
    # A dead worker's claims run out with the HTTP deadline; its lane is taken over at the
    # next recovery run.
    stack.env.update(RELAY_DELIVERY_TIMEOUT_S="2", RELAY_RECOVERY_INTERVAL_S="1")
    base = stack.start_api()
    stack.put_source()
    sub_id = stack.subscribe(receiver.url, ordering={"mode": "fifo"})["id"]
    stack.start_worker("w1")
    stack.start_worker("w2")
    stack.wait_ready()
    receiver.script(*([200, 200, 200, 200, 503] * 20))

    post_in_order(base, 0, 20)
    # kill -9 mid-drain: its claims run out and the lane hands them out again, in order.
    stack.kill("w1")
    post_in_order(base, 20, 20)
    stack.start_worker("w1")
    stack.admin("POST", f"/api/subscriptions/{sub_id}/pause")
    post_in_order(base, 40, 20)
    stack.admin("POST", f"/api/subscriptions/{sub_id}/resume")

    wait_until(
        lambda: set(seqs_seen(receiver)) >= set(range(60)),
        60,
        f"60 delivered: {seqs_seen(receiver)}",
    )
    assert_fifo(seqs_seen(receiver), 60)
