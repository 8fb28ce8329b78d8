"""Real relay processes for the benchmarks and the fault suite: start, watch, kill, restart.

Both need the same things: ``relay serve`` and ``relay worker`` as separate processes (so a
``kill -9`` is a real crash), each with its own log file to read after the fact, and a clear
error naming the process and its last log lines when one dies unexpectedly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

START_TIMEOUT_S = 30.0
# The directory holding the ``relay``, ``config`` and ``workers`` packages imported here.
_ROOT = Path(__file__).resolve().parents[2]


def relay_command(sub: str) -> list[str]:
    beside = Path(sys.executable).parent / "relay"
    exe = str(beside) if beside.exists() else shutil.which("relay")
    return [exe, sub] if exe else [sys.executable, "-m", "relay.cli", sub]


def relay_env(redis_url: str, token: str, port: int, log_level: str) -> dict[str, str]:
    """Environment of ``relay serve`` / ``relay worker`` on 127.0.0.1.

    RELAY_* tuning variables (RELAY_WORKER_POLL_DELAY_S, ...) pass through; where the relay
    runs and how it is reached are set here.
    """
    env = dict(os.environ)
    # The code under test, not whatever checkout the `relay` script was installed from (an
    # editable install in a shared virtualenv points at one worktree only).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    env.update(
        RELAY_REDIS_URL=redis_url,
        RELAY_ADMIN_TOKEN=token,
        RELAY_HOST="127.0.0.1",
        RELAY_PORT=str(port),
        RELAY_LOG_LEVEL=log_level,
        # Receivers are on loopback, which the relay refuses by default.
        RELAY_ALLOWED_PRIVATE_NETWORKS="127.0.0.0/8,::1/128",
        RELAY_LOG_FORMAT="json",
    )
    return env


def spawn(cmd: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout and stderr appended to ``log_path`` (a restart keeps both)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
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
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            proc.terminate()
    for proc in procs.values():
        stop_process(proc)


def tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ProcessGroup:
    """Named processes logging to ``log_dir/<label>-<name>.log``; all stopped on exit."""

    def __init__(self, log_dir: Path, label: str) -> None:
        self.log_dir = log_dir
        self.label = label
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[str, int | None] = {}

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        stop_all(self.procs)
        self.exit_codes.update({name: proc.returncode for name, proc in self.procs.items()})

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{self.label}-{name}.log"

    def log_text(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn(self, name: str, cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self.procs[name] = spawn(cmd, env, self.log_path(name))
        return self.procs[name]

    def signal(self, name: str, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.procs[name].send_signal(signum)

    def kill(self, name: str) -> None:
        """``kill -9``: no clean-up runs, as in a crash or an OOM kill. ``name`` may start again."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        self.exit_codes[name] = proc.wait()

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} {name} exited with {proc.returncode}; last lines of its log:\n"
                    + tail(self.log_path(name))
                )

    def wait_http(
        self,
        name: str,
        url: str,
        headers: dict[str, str] | None = None,
        ok: int = 200,
        timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        """Until ``GET url`` answers ``ok``; a clear error with ``name``'s log otherwise."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url, headers=headers).status_code == ok:
                        return
                time.sleep(0.05)
        raise RuntimeError(
            f"{self.label} {name}: GET {url} did not answer {ok} within {timeout_s} s; "
            f"last lines of its log:\n{tail(self.log_path(name))}"
        )
