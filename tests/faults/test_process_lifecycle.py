"""How `relay serve` and `relay worker` start and stop, as Docker or Kubernetes sees them: a
normal stop exits 0, a configuration mistake is one line and exit 2, Redis being away at start
is waited for (RELAY_REDIS_START_TIMEOUT_S: containers starting together), and a Redis that
never answers is one line and exit 1."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
import redis

from relay.devtools.processes import relay_command
from relay.devtools.receiver import Receiver, Reply
from relay.storage.keys import Keys
from tests.faults.harness import RelayStack, wait_until


def test_sigterm_is_a_normal_stop(stack: RelayStack) -> None:
    stack.start_worker()
    wait_until(lambda: "worker.started" in stack.log("worker"), 30, "the worker started")
    proc = stack.group.procs["worker"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = stack.log("worker")
    assert '"worker.stopped"' in log
    assert "Traceback" not in log
    assert "CancelledError" not in log


@pytest.mark.parametrize(
    ("command", "url", "says"),
    [
        ("serve", "localhost:6379", "RELAY_REDIS_URL: must start with redis://"),
        ("worker", "localhost:6379", "RELAY_REDIS_URL: must start with redis://"),
        ("worker", "", "RELAY_REDIS_URL is not set"),
    ],
)
def test_a_redis_address_mistake_is_one_line_and_exit_2(
    stack: RelayStack, command: str, url: str, says: str
) -> None:
    env = {**stack.env, "RELAY_REDIS_URL": url}
    done = subprocess.run(
        relay_command(command), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr + done.stdout


def test_processes_started_before_redis_wait_for_it(stack: RelayStack, receiver: Receiver) -> None:
    stack.kill_redis()
    base = stack.start_api(wait=False)
    stack.start_worker()
    # Both have tried Redis (an API slow to import could otherwise miss the outage).
    both_said_why = lambda: all("redis.unavailable" in stack.log(n) for n in ("api", "worker"))  # noqa: E731
    wait_until(both_said_why, 30, "api and worker say why they wait")
    assert stack.alive("api")
    assert stack.alive("worker")
    stack.restart_redis()
    stack.group.wait_http("api", f"{base}/healthz")
    stack.wait_ready()
    stack.put_source()
    stack.subscribe(receiver.url)
    response = httpx.post(
        f"{base}/ingest/github",
        content=b"{}",
        headers={"X-GitHub-Event": "push", "content-type": "application/json"},
        trust_env=False,
    )
    assert response.status_code == 202
    receiver.wait_for(1)
    for name in ("api", "worker"):
        log = stack.log(name)
        assert log.count('"redis.unavailable"') == 1
        assert "Traceback" not in log


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_redis_that_never_answers_is_one_line_and_exit_1(stack: RelayStack, command: str) -> None:
    stack.kill_redis()
    env = {**stack.env, "RELAY_REDIS_START_TIMEOUT_S": "1"}
    done = subprocess.run(
        relay_command(command), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("relay:")]
    assert "did not answer within 1 s" in line
    assert "RELAY_REDIS_URL" in line
    assert "Traceback" not in done.stderr + done.stdout


def test_a_stopping_worker_leaves_the_fair_share_and_finishes_its_attempt(
    stack: RelayStack, receiver: Receiver
) -> None:
    """On SIGTERM a worker stops taking jobs and finishes the attempt it has in flight: the
    other workers stop counting it in their share of the busy lanes at once, while it stays
    alive (its lanes are not taken from under it) until it exits."""
    receiver.default = Reply(delay_s=3.0)
    base = stack.start_api()
    stack.start_worker()
    stack.wait_ready()
    stack.put_source()
    sub = stack.subscribe(receiver.url)
    r = redis.Redis.from_url(stack.redis.url)
    httpx.post(f"{base}/ingest/github", content=b"{}", trust_env=False).raise_for_status()
    in_flight = Keys.lane(sub["id"], "flight")
    wait_until(lambda: r.zcard(in_flight) == 1, 10, "an attempt in flight")
    [worker_id] = [w.decode() for w in r.zrange(Keys.picking_workers, 0, -1)]
    proc = stack.group.procs["worker"]
    proc.send_signal(signal.SIGTERM)
    wait_until(lambda: r.zcard(Keys.picking_workers) == 0, 5, "the worker left the share")
    assert proc.poll() is None  # still finishing its attempt
    assert r.zscore(Keys.workers, worker_id) is not None
    assert proc.wait(timeout=30) == 0
    assert len(receiver.requests) == 1
    assert r.zscore(Keys.workers, worker_id) is None  # gone once stopped
    r.close()
