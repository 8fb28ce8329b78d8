"""How `relay serve` and `relay worker` start and stop, as Docker or Kubernetes sees them: a
normal stop exits 0, a configuration mistake is one line and exit 2, Redis being away at start
is waited for (RELAY_REDIS_START_TIMEOUT_S: containers starting together), and a Redis that
never answers is one line and exit 1."""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest

from relay.devtools.processes import relay_command
from relay.devtools.receiver import Receiver
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
