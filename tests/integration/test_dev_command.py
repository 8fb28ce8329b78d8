"""`relay dev` as a user runs it: embedded Redis, API and worker, Ctrl-C, and a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from relay.embedded_redis import free_port
from relay.receiver import Receiver

TOKEN = "dev-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def start_dev(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        RELAY_DATA_DIR=str(data_dir),
        RELAY_PORT=str(port),
        RELAY_ADMIN_TOKEN=TOKEN,
        RELAY_LOG_FORMAT="json",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"relay dev exited: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/sources", headers=AUTH).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("relay dev did not start")


def stop_dev(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def test_dev_delivers_and_keeps_events_across_restarts(tmp_path: Path) -> None:
    receiver = Receiver()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_dev(tmp_path / "data", port)
    try:
        httpx.put(f"{base}/api/sources/github", json={}, headers=AUTH).raise_for_status()
        httpx.post(
            f"{base}/api/subscriptions",
            json={"url": receiver.url, "sources": ["github"]},
            headers=AUTH,
        ).raise_for_status()
        r = httpx.post(f"{base}/ingest/github", content=b'{"hello":"dev"}')
        assert r.status_code == 202
        event_id = r.json()["event_id"]
        [got] = receiver.wait_for(1, timeout_s=15)
        assert got.body == b'{"hello":"dev"}'
    finally:
        out = stop_dev(proc)
    assert '"event":"dev.redis_stopped"' in out
    assert list((tmp_path / "data").glob("appendonly*")), "no append-only file was written"

    proc = start_dev(tmp_path / "data", port)
    try:
        r = httpx.get(f"{base}/api/events/{event_id}", headers=AUTH)
        assert r.status_code == 200
        assert r.json()["deliveries"][0]["status"] == "succeeded"
    finally:
        stop_dev(proc)
        receiver.close()
