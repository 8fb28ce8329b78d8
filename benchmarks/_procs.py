"""Process plumbing shared by the benchmark scripts.

The scripts run as ``python benchmarks/<name>.py``, so this directory is on ``sys.path`` and
they ``import _procs``; ``benchmarks`` is not a package.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import uvicorn

import relay
from relay.devtools.embedded_redis import find_redis_server

# --- stopping ------------------------------------------------------------------------------
# Starting, watching and stopping processes lives in relay.devtools.processes (shared with
# the fault suite).


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
