"""High availability with Redis Sentinel: a primary, a replica and three sentinels, all real
redis-server processes. The primary is killed under load; the sentinels promote the replica;
the relay (API and worker processes) finds the new primary by itself. Ingest answers 503
for a moment, and nothing it acknowledged is lost (appendfsync always on the primary, which
refuses writes without a replica: min-replicas-to-write 1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from relay.devtools.embedded_redis import find_redis_server, free_port
from relay.devtools.receiver import Receiver
from tests.faults.conftest import Figures
from tests.faults.harness import RelayStack, wait_until
from tests.faults.test_redis_outages import Traffic, assert_rode_it_out, delivered

MASTER = "relay"


class Cluster:
    """Primary, replica and three sentinels, started in ``stack``'s process group."""

    def __init__(self, stack: RelayStack, workdir: Path) -> None:
        self.stack = stack
        self.binary = find_redis_server()
        self.primary, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]
        self.workdir = workdir

    def _redis(self, name: str, port: int, *extra: str) -> None:
        data = self.workdir / name
        data.mkdir()
        args = [
            self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always", *extra,
        ]  # fmt: skip
        self.stack.group.spawn(name, args, {})

    def start(self) -> None:
        self._redis("redis-primary", self.primary, "--min-replicas-to-write", "1")
        self._redis("redis-replica", self.replica, "--replicaof", "127.0.0.1", str(self.primary))
        for n in range(len(self.sentinels)):
            self._sentinel(n)
        wait_until(self.sentinels_answer, 20, "the sentinels answer")
        wait_until(self.replicating, 20, "the replica is in sync with the primary")
        wait_until(lambda: self.known_replicas() >= 1, 20, "the sentinels know the replica")

    def _sentinel(self, n: int) -> None:
        conf = self.workdir / f"sentinel-{n}.conf"
        conf.write_text(
            f"port {self.sentinels[n]}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 500\n"
            f"sentinel failover-timeout {MASTER} 3000\n"
        )
        self.stack.group.spawn(f"sentinel-{n}", [self.binary, str(conf), "--sentinel"], {})

    def sentinels_answer(self) -> bool:
        for n, port in enumerate(self.sentinels):
            if not self.stack.alive(f"sentinel-{n}"):
                log = self.stack.log(f"sentinel-{n}")
                if "Address already in use" not in log:
                    pytest.skip(f"{self.binary} cannot run as a sentinel: {log[-300:]}")
                # Another process took the free port first (other tests share the machine).
                self.stack.group.procs.pop(f"sentinel-{n}")
                self.sentinels[n] = free_port()
                self._sentinel(n)
                return False
            try:
                redis.Redis(port=port).ping()
            except redis.ConnectionError:
                return False
        return True

    def replicating(self) -> bool:
        try:
            info = redis.Redis(port=self.primary).info("replication")
        except redis.ConnectionError:
            return False
        return int(info.get("connected_slaves", 0)) >= 1 and "online" in str(info.get("slave0"))

    def known_replicas(self) -> int:
        try:
            return min(len(redis.Redis(port=p).sentinel_slaves(MASTER)) for p in self.sentinels)
        except redis.ConnectionError:
            return 0

    def master_port(self) -> int:
        _, port = redis.Redis(port=self.sentinels[0]).sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"


@pytest.fixture
def cluster(stack: RelayStack, tmp_path: Path) -> Cluster:
    running = Cluster(stack, tmp_path)
    running.start()
    return running


def test_the_primary_dies_and_the_relay_follows_the_failover(
    stack: RelayStack, cluster: Cluster, receiver: Receiver, fault_figures: Figures
) -> None:
    stack.env["RELAY_REDIS_URL"] = cluster.url
    base = stack.start_api()
    stack.put_source()
    stack.subscribe(receiver.url)
    stack.start_worker()
    stack.wait_ready()
    with Traffic(base) as traffic:
        traffic.wait_for(30)
        killed_at = time.monotonic()
        stack.kill("redis-primary")
        wait_until(lambda: cluster.master_port() == cluster.replica, 20, "the replica promoted")
        promoted_s = time.monotonic() - killed_at
        traffic.wait_for(30)
    wait_until(
        lambda: set(traffic.accepted) <= set(delivered(receiver)),
        30,
        f"{len(traffic.accepted)} acknowledged webhooks delivered",
    )
    got = delivered(receiver)
    fault_figures("sentinel promoted the replica, s after kill -9", f"{promoted_s:.1f}")
    fault_figures("acknowledged", len(traffic.accepted))
    fault_figures("refused during the failover (503)", len(traffic.refused))
    if traffic.refused_at:
        fault_figures("last 503, s after kill -9", f"{max(traffic.refused_at) - killed_at:.1f}")
    fault_figures("duplicates (same webhook-id)", len(got) - len(set(got)))
    assert {status for status, _ in traffic.refused} <= {503}
    assert_rode_it_out(stack)
