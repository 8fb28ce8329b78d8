"""kill -9 of the API and of the worker under load: everything acknowledged is delivered."""

from __future__ import annotations

import json

import httpx

from relay.devtools.receiver import Receiver
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, post_keyed, wait_until


def post_webhooks(base: str, count: int) -> list[str]:
    """POST ``count`` webhooks, ignoring refused connections; the idempotency keys acknowledged."""
    accepted: list[str] = []
    with httpx.Client(base_url=base, trust_env=False, timeout=5.0) as client:
        for _ in range(count):
            try:
                key, response = post_keyed(client)
            except httpx.TransportError:
                continue
            if response.status_code == 202:
                accepted.append(key)
    return accepted


def delivered_keys(receiver: Receiver) -> set[str]:
    """The keys of the webhooks the receiver got (each POST's body names its key)."""
    return {json.loads(r.body)["key"] for r in receiver.requests}


def test_kill_9_of_api_and_worker_loses_nothing_acknowledged(
    stack: RelayStack, receiver: Receiver, fault_figures: Figures
) -> None:
    base = stack.start_api()
    stack.put_source()
    stack.subscribe(receiver.url)
    stack.start_worker()
    stack.wait_ready()

    accepted = post_webhooks(base, 150)
    stack.kill("worker")  # mid-drain: some deliveries are in flight or claimed
    stack.kill("api")  # some events may not be fanned out yet
    stack.start_api()
    accepted += post_webhooks(base, 50)
    stack.start_worker()

    def all_delivered() -> bool:
        return set(accepted) <= delivered_keys(receiver)

    recovery_s = wait_until(all_delivered, 45, f"{len(accepted)} acknowledged events delivered")
    delivered_ids = [r.headers.get("webhook-id") for r in receiver.requests]
    duplicates = len(delivered_ids) - len(set(delivered_ids))
    fault_figures("acknowledged", len(accepted))
    fault_figures("all delivered, s after the worker restarted", f"{recovery_s:.1f}")
    fault_figures("duplicates (same webhook-id)", duplicates)
    assert stack.alive("api")
    assert stack.alive("worker")
