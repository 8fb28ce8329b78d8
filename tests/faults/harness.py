"""A relay made of real processes, for tests that crash parts of it.

``RelayStack`` owns a redis-server with an append-only file (so a ``kill -9`` of Redis loses at
most what ``appendfsync everysec`` allows, as in production) on a fixed port, so that a restart
comes back where the relay's processes expect it, and any number of ``relay serve`` and
``relay worker`` processes. Everything is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from relay.devtools.embedded_redis import EmbeddedRedis, free_port
from relay.devtools.processes import ProcessGroup, relay_command, relay_env


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05
) -> float:
    """Poll ``condition`` until true; the seconds it took. Fails the test with ``what``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(interval_s)
    return time.monotonic() - start


def post_keyed(client: httpx.Client, source: str = "github") -> tuple[str, httpx.Response]:
    """POST a webhook whose body and idempotency key name a fresh key: the receiver's
    requests say which acknowledged webhooks arrived. Transport errors propagate."""
    key = str(uuid.uuid4())
    response = client.post(
        f"/ingest/{source}",
        content=json.dumps({"key": key}).encode(),
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": key,
            "content-type": "application/json",
        },
    )
    return key, response


class RelayStack:
    def __init__(self, workdir: Path, redis_options: Sequence[str] = (), **env: str) -> None:
        self.workdir = workdir
        self.token = "fault_" + secrets.token_urlsafe(18)
        self.redis_port = free_port()
        self.redis_dir = workdir / "redis"
        self.redis_options = tuple(redis_options)
        self.redis = EmbeddedRedis(self.redis_dir, port=self.redis_port, options=redis_options)
        self.group = ProcessGroup(workdir, "relay")
        self.api_ports: dict[str, int] = {}
        # Short schedules through configuration, as an operator would set them.
        self.env = relay_env(self.redis.url, self.token, 0, log_level="INFO")
        self.env.update(
            RELAY_RETRY__INITIAL_S="0.05",
            RELAY_RETRY__MAX_WAIT_S="0.5",
            RELAY_RETRY__JITTER_S="0",
        )
        self.env.update(env)

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> RelayStack:
        self.redis.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.group.stop_all()
        if self.redis.process is not None and self.redis.process.poll() is None:
            self.redis.process.send_signal(signal.SIGCONT)
        self.redis.stop()

    # --- Redis faults ------------------------------------------------------------------------

    def kill_redis(self) -> None:
        assert self.redis.process is not None
        self.redis.process.kill()
        self.redis.process.wait()

    def restart_redis(self) -> None:
        """Start Redis again on the same port from its append-only file."""
        self.redis = EmbeddedRedis(
            self.redis_dir, port=self.redis_port, options=self.redis_options
        ).start()

    def pause_redis(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, like a stalled or swapped host."""
        assert self.redis.process is not None
        self.redis.process.send_signal(signal.SIGSTOP)

    def resume_redis(self) -> None:
        assert self.redis.process is not None
        self.redis.process.send_signal(signal.SIGCONT)

    # --- relay processes ---------------------------------------------------------------------

    def start_api(self, name: str = "api", wait: bool = True, **env: str) -> str:
        """Start ``relay serve``; its base URL (once it answers, unless ``wait`` is False)."""
        port = self.api_ports.get(name) or free_port()
        self.api_ports[name] = port
        self.group.spawn(name, relay_command("serve"), {**self.env, **env, "RELAY_PORT": str(port)})
        base = f"http://127.0.0.1:{port}"
        if wait:
            # /healthz: /readyz also wants a worker's heartbeat; the worker may start later.
            self.group.wait_http(name, f"{base}/healthz")
        return base

    def start_worker(self, name: str = "worker", **env: str) -> None:
        self.group.spawn(name, relay_command("worker"), {**self.env, **env})

    def wait_ready(self, name: str = "api", timeout_s: float = 30.0) -> None:
        """Until ``/readyz`` says Redis answers and a worker is polling."""
        base = f"http://127.0.0.1:{self.api_ports[name]}"
        self.group.wait_http(name, f"{base}/readyz", timeout_s=timeout_s)

    def kill(self, name: str) -> None:
        self.group.kill(name)

    def alive(self, name: str) -> bool:
        return self.group.alive(name)

    def log(self, name: str) -> str:
        return self.group.log_text(name)

    def client(self, name: str = "api", timeout_s: float = 10.0) -> httpx.Client:
        base = f"http://127.0.0.1:{self.api_ports[name]}"
        return httpx.Client(
            base_url=base,
            headers={"authorization": f"Bearer {self.token}"},
            trust_env=False,
            timeout=timeout_s,
        )

    # --- the admin API, as a user's script would call it -------------------------------------

    def admin(self, method: str, path: str, name: str = "api", **json: Any) -> Any:
        with self.client(name) as client:
            response = client.request(method, path, json=json or None)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def put_source(self, source: str = "github", **spec: Any) -> None:
        body = {"event_type_header": "X-GitHub-Event", "idempotency_header": "X-GitHub-Delivery"}
        body.update(spec)
        self.admin("PUT", f"/api/sources/{source}", **body)

    def subscribe(self, url: str, source: str = "github", **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "sources": [source]}
        body.update(spec)
        created: dict[str, Any] = self.admin("POST", "/api/subscriptions", **body)
        return created
