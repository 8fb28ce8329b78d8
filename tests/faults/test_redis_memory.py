"""When Redis's memory runs out, or Redis may drop keys to make room, or stalls past a
request's deadline: the relay refuses loudly, answers honestly, keeps running and loses
nothing it acknowledged (issue 20, the Redis half)."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config.settings import Settings
from relay.devtools.processes import relay_command
from relay.devtools.receiver import Receiver
from relay.storage.keys import Keys
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, post_keyed, wait_until
from tests.faults.test_redis_outages import Traffic, delivered, ready, start_relay

# The relay re-reads Redis's eviction policy (and probes a full Redis) this often here.
CHECK_S = "0.3"


@pytest.fixture
def ops_receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def redis_of(stack: RelayStack) -> redis.Redis:
    return redis.Redis(port=stack.redis_port)


def readyz(stack: RelayStack) -> tuple[int, dict[str, object]]:
    with stack.client() as client:
        response = client.get("/readyz")
    return response.status_code, response.json()


def ops_types(receiver: Receiver) -> list[str]:
    return [json.loads(r.body)["type"] for r in receiver.requests]


@pytest.mark.parametrize(
    ("command", "policy"),
    [
        ("serve", "allkeys-lru"),
        ("worker", "volatile-lru"),
        ("serve", "volatile-lru"),
        ("dev", "allkeys-lru"),
    ],
)
def test_an_evicting_redis_is_refused_at_start(
    tmp_path: Path, command: str, policy: str, fault_figures: Figures
) -> None:
    with RelayStack(tmp_path, redis_options=("--maxmemory-policy", policy)) as stack:
        started = time.monotonic()
        done = subprocess.run(
            relay_command(command),
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        fault_figures(f"{command} against {policy}: exit, s", f"{time.monotonic() - started:.1f}")
    assert done.returncode == 2
    lines = [line for line in done.stderr.strip().splitlines() if "maxmemory-policy" in line]
    assert len(lines) == 1, done.stderr
    assert policy in lines[0]
    assert "set maxmemory-policy noeviction" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout


def test_an_eviction_policy_switched_at_run_time_stops_ingest_until_switched_back(
    stack: RelayStack, receiver: Receiver, ops_receiver: Receiver, fault_figures: Figures
) -> None:
    stack.env["RELAY_REDIS_CHECK_INTERVAL_S"] = CHECK_S
    base = start_relay(stack, receiver)
    stack.subscribe(ops_receiver.url, source="_relay.ops")
    r = redis_of(stack)
    with Traffic(base) as traffic:
        traffic.wait_for(10)
        r.config_set("maxmemory-policy", "volatile-lru")
        switched = time.monotonic()
        took = wait_until(lambda: ready(stack) == 503, 10, "/readyz says Redis evicts")
        status, body = readyz(stack)
        assert (status, body["reason"]) == (503, "evicting")
        assert "volatile-lru" in str(body["detail"])
        wait_until(lambda: len(traffic.refusals) >= 5, 10, "ingest refuses")
        r.config_set("maxmemory-policy", "noeviction")
        wait_until(lambda: ready(stack) == 200, 10, "/readyz ready again")
        back = len(traffic.accepted)
        traffic.wait_for(10)
    fault_figures("/readyz 503 after the switch, s", f"{took:.2f}")
    fault_figures("refused while evicting (503)", len(traffic.refusals))
    for _, problem, retry_after in traffic.refusals:
        assert problem["status"] == 503
        assert problem["reason"] == "evicting"
        assert "maxmemory-policy" in str(problem["detail"])
        assert retry_after is not None
    assert {status for status, _ in traffic.refused} == {503}
    # Both processes noticed, each said so once; the operators were told once.
    for name in ("api", "worker"):
        log = stack.log(name)
        assert log.count('"redis.evicting"') == 1, name
        assert log.count('"redis.evicting_stopped"') == 1, name
        assert "Traceback" not in log
    wait_until(lambda: len(ops_receiver.requests) >= 2, 10, "both operational events")
    time.sleep(1.0)  # a third (a second process reporting the same change) would come now
    assert ops_types(ops_receiver) == [
        "redis.eviction_policy_unsafe",
        "redis.eviction_policy_restored",
    ]
    unsafe = json.loads(ops_receiver.requests[0].body)["data"]
    assert unsafe == {"maxmemory_policy": "volatile-lru", "required": "noeviction"}
    wait_until(
        lambda: set(traffic.accepted) <= set(delivered(receiver)), 20, "all accepted delivered"
    )
    fault_figures("accepted after switching back", len(traffic.accepted) - back)
    fault_figures("switch to 503 on ingest, s", f"{traffic.refused_at[0] - switched:.2f}")


def test_a_full_redis_is_an_outage_ridden_out_by_every_process(
    stack: RelayStack, receiver: Receiver, fault_figures: Figures
) -> None:
    stack.env["RELAY_REDIS_CHECK_INTERVAL_S"] = CHECK_S
    base = start_relay(stack, receiver)
    r = redis_of(stack)
    with Traffic(base, interval_s=0.005) as traffic, Traffic(base, interval_s=0.005) as more:
        traffic.wait_for(50)
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", str(used + 300_000))
        wait_until(lambda: len(traffic.refusals) >= 20, 20, "ingest refuses when Redis is full")
        status, body = readyz(stack)
        assert (status, body["reason"]) == (503, "out_of_memory")
        # A worker started while Redis is full waits for it, as for a Redis that is away.
        stack.start_worker("late_worker")
        wait_until(
            lambda: '"out_of_memory"' in stack.log("late_worker"), 30, "the late worker waits"
        )
        assert stack.alive("worker")
        assert stack.alive("late_worker")
        assert stack.alive("api")
        r.config_set("maxmemory", "0")
        back = time.monotonic()
        traffic.wait_for(50)
    wait_until(lambda: ready(stack) == 200, 10, "/readyz ready again")
    accepted = traffic.accepted + more.accepted
    wait_until(lambda: set(accepted) <= set(delivered(receiver)), 30, "all accepted delivered")
    got = delivered(receiver)
    refused = traffic.refused + more.refused
    statuses = Counter(status for status, _ in refused)
    fault_figures("accepted (202)", len(accepted))
    fault_figures("refused (by status)", dict(statuses))
    fault_figures("delivered", len(set(got)))
    fault_figures("duplicates (same key delivered twice)", len(got) - len(set(got)))
    fault_figures("all delivered, s after memory returned", f"{time.monotonic() - back:.1f}")
    assert set(statuses) == {503}
    for _, problem, retry_after in traffic.refusals + more.refusals:
        assert problem["reason"] == "redis_out_of_memory"
        assert "out of memory" in str(problem["detail"])
        assert retry_after is not None
    # Only what was in flight when Redis filled up can arrive twice (at most a lane's
    # concurrency; attempts record their outcome once memory returns, within their lease).
    assert len(got) - len(set(got)) <= Settings().max_concurrency_per_subscription
    for name in ("api", "worker", "late_worker"):
        assert stack.alive(name)
    # Its Redis watch writes every CHECK_S; 30 s leaves room for a loaded CI machine.
    wait_until(lambda: '"redis.recovered"' in stack.log("worker"), 30, "the worker logs the end")
    for name in ("api", "worker"):
        log = stack.log(name)
        assert "Traceback" not in log, name
        assert log.count('"redis.unavailable"') == 1, name
        assert log.count('"redis.recovered"') == 1, name
        assert '"out_of_memory"' in log
    wait_until(lambda: '"worker.started"' in stack.log("late_worker"), 10, "late worker starts")
    assert "Traceback" not in stack.log("late_worker")
    with stack.client() as client:
        metrics = client.get("/metrics").text
    assert 'relay_redis_outages_total{cause="out_of_memory"} 1.0' in metrics
    assert 'relay_redis_unavailable{cause="out_of_memory"} 0.0' in metrics
    # One line per outage, not one per refusal: the refusals are a count.
    assert '"request.refused"' not in stack.log("api")
    counted = re.search(r'relay_http_refused_total\{reason="redis_out_of_memory"\} (\d+)', metrics)
    assert counted is not None
    assert int(counted.group(1)) >= len(refused)


def test_a_503_from_a_stalled_redis_stored_nothing(
    stack: RelayStack, receiver: Receiver, fault_figures: Figures
) -> None:
    stack.env["RELAY_REDIS_SOCKET_TIMEOUT_S"] = "0.5"
    stack.env["RELAY_REDIS_CHECK_INTERVAL_S"] = CHECK_S
    base = start_relay(stack, receiver)
    # Four senders side by side: up to 40 webhooks/s, several waiting on Redis at once.
    senders = [Traffic(base, interval_s=0.1) for _ in range(4)]
    with contextlib.ExitStack() as running:
        for sender in senders:
            running.enter_context(sender)
        senders[0].wait_for(5)
        stack.pause_redis()
        time.sleep(2.5)  # five socket timeouts
        stack.resume_redis()
        senders[0].wait_for(5)
    accepted = [key for sender in senders for key in sender.accepted]
    refusals = [refusal for sender in senders for refusal in sender.refusals]
    wait_until(lambda: set(accepted) <= set(delivered(receiver)), 30, "all accepted delivered")
    time.sleep(1.0)  # anything stored late would have been fanned out and delivered by now
    r = redis_of(stack)
    stored_keys = {
        json.loads(r.get(Keys.event_body(event_id.decode())) or b"{}").get("key")
        for event_id in r.zrange(Keys.events, 0, -1)
    }
    refused_keys = [key for key, _, _ in refusals]
    got = set(delivered(receiver))
    reasons = Counter(str(problem.get("reason")) for _, problem, _ in refusals)
    fault_figures("accepted (202)", len(accepted))
    fault_figures("refused (503) by reason", dict(reasons))
    fault_figures("refused but stored", len(set(refused_keys) & stored_keys))
    fault_figures("refused but delivered", len(set(refused_keys) & got))
    assert len(refused_keys) >= 5, "too few webhooks were refused while Redis was stalled"
    assert {status for sender in senders for status, _ in sender.refused} == {503}
    assert not set(refused_keys) & stored_keys
    assert not set(refused_keys) & got
    assert not any(r.exists(Keys.idempotency("github", key)) for key in refused_keys)
    assert set(accepted) <= stored_keys


def test_an_idle_worker_stops_promptly_when_redis_is_down(
    stack: RelayStack, fault_figures: Figures
) -> None:
    stack.start_worker()
    wait_until(lambda: "worker.started" in stack.log("worker"), 30, "the worker started")
    stack.kill_redis()
    wait_until(lambda: "redis.unavailable" in stack.log("worker"), 10, "the worker saw it")
    proc = stack.group.procs["worker"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    took = time.monotonic() - started
    fault_figures("idle worker, Redis down: SIGTERM to exit, s", f"{took:.1f}")
    assert code == 0
    assert took < 10
    assert "Traceback" not in stack.log("worker")


def test_one_post_is_enough_to_see_an_evicting_redis(stack: RelayStack) -> None:
    """Ingest answers with the reason at once, not only after a worker noticed. The policy
    change is one error line (``redis.evicting``); each of the thousands of webhooks a
    second refused for it until an operator acts is a count, as for an outage (issue 20
    found 39 MB of logs in 18 s), not an info line each."""
    stack.env["RELAY_REDIS_CHECK_INTERVAL_S"] = CHECK_S
    stack.start_api()
    stack.put_source()
    redis_of(stack).config_set("maxmemory-policy", "allkeys-lru")
    with stack.client() as client:
        wait_until(lambda: post_keyed(client)[1].status_code == 503, 10, "ingest refuses")
        _, response = post_keyed(client)
        refused = [post_keyed(client)[1].status_code for _ in range(30)]
        metrics = client.get("/metrics").text
    assert response.json()["reason"] == "evicting"
    assert response.headers["retry-after"]
    assert set(refused) == {503}
    assert 'reason="evicting"' in metrics
    log = stack.log("api")
    assert log.count('"redis.evicting"') == 1
    assert log.count('"ingest.rejected"') < 5


def test_a_full_redis_still_lets_api_tokens_read(stack: RelayStack) -> None:
    """Reads go on while a full Redis refuses writes, and an SRE on a bad day reads the
    events and dead letters with their API token: the token's last-used time (a write) must
    not turn that read into a 503."""
    stack.start_api()
    with stack.client() as client:
        made = client.post("/api/tokens", json={"name": "oncall", "role": "viewer"}).json()
    r = redis_of(stack)
    r.config_set("maxmemory", "1")  # below what Redis holds: every write is refused
    try:
        with stack.client() as client:
            bearer = {"authorization": f"Bearer {made['token']}"}
            response = client.get("/api/events", headers=bearer)
    finally:
        r.config_set("maxmemory", "0")
    assert response.status_code == 200, response.text
