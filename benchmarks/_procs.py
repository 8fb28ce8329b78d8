"""Process plumbing shared by the benchmark scripts.

The scripts run as ``python benchmarks/<name>.py``, so this directory is on ``sys.path`` and
they ``import _procs``; ``benchmarks`` is not a package.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

import relay
from relay.devtools.embedded_redis import find_redis_server

# --- starting and stopping -----------------------------------------------------------------


def relay_command(sub: str) -> list[str]:
    beside = Path(sys.executable).parent / "relay"
    exe = str(beside) if beside.exists() else shutil.which("relay")
    return [exe, sub] if exe else [sys.executable, "-m", "relay.cli", sub]


def relay_env(redis_url: str, token: str, port: int, log_level: str) -> dict[str, str]:
    """Environment of ``relay serve`` / ``relay worker`` for a benchmark on 127.0.0.1.

    RELAY_* tuning variables (RELAY_WORKER_POLL_DELAY_S, ...) pass through; where the relay
    runs and how it is reached are set here.
    """
    env = dict(os.environ)
    env.update(
        RELAY_REDIS_URL=redis_url,
        RELAY_ADMIN_TOKEN=token,
        RELAY_HOST="127.0.0.1",
        RELAY_PORT=str(port),
        RELAY_LOG_LEVEL=log_level,
        # The receiver is on loopback, which the relay refuses by default.
        RELAY_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8,::1/128",
        RELAY_LOG_FORMAT="json",
    )
    return env


def spawn(cmd: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr going to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            cmd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by us, not by a Ctrl-C meant for us
        )


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_all(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process first, then wait for each: they shut down in parallel."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        stop_process(proc)


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so the finally blocks stop what was started."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)


# --- talking to the relay ------------------------------------------------------------------


def admin(client: httpx.Client, auth: dict[str, str], method: str, path: str, **json: Any) -> Any:
    response = client.request(method, path, headers=auth, json=json)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text}")
    return response.json() if response.content else None


# --- CPU accounting (Linux /proc; silently absent elsewhere) -------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (all its threads), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """CPU seconds each named process used between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float | None] = {}

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for name, pid in self.pids.items():
            before, after = self._before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                used[name] = after - before
        return used


# --- what ran ------------------------------------------------------------------------------


def redis_version() -> str:
    try:
        out = subprocess.run(
            [find_redis_server(), "--version"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip()


def has_module(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def versions() -> str:
    import arq
    import fastapi

    loop = "uvloop" if has_module("uvloop") else "asyncio"
    http = "httptools" if has_module("httptools") else "h11"
    return (
        f"python {platform.python_version()}, redis-server {redis_version()}, "
        f"uvicorn {uvicorn.__version__} ({loop}, {http}), httpx {httpx.__version__}, "
        f"fastapi {fastapi.__version__}, arq {getattr(arq, 'VERSION', '?')}"
    )


def print_header() -> None:
    print(f"machine: {platform.platform()}, os.cpu_count()={os.cpu_count()}")
    print(f"versions: {versions()}")
    print(f"relay code: {Path(relay.__file__).parent.parent}")
