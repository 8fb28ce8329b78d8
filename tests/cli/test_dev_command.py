"""`relay dev` as a user runs it: embedded Redis, API and worker, Ctrl-C, and a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from relay.devtools.embedded_redis import free_port
from relay.devtools.receiver import Receiver

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
    # One line per webhook: ours, with method, path and status; uvicorn's access line is opt-in.
    assert '"event":"ingest.accepted"' in out
    assert '"logger":"uvicorn.access"' not in out
    assert list((tmp_path / "data").glob("appendonly*")), "no append-only file was written"

    proc = start_dev(tmp_path / "data", port)
    try:
        r = httpx.get(f"{base}/api/events/{event_id}", headers=AUTH)
        assert r.status_code == 200
        assert r.json()["deliveries"][0]["status"] == "succeeded"
    finally:
        stop_dev(proc)
        receiver.close()


def test_serve_with_several_workers_sums_metrics_across_processes(tmp_path: Path) -> None:
    from relay.devtools.embedded_redis import EmbeddedRedis

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmbeddedRedis() as redis_server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "PROMETHEUS_"))}
        env.update(RELAY_REDIS_URL=redis_server.url, RELAY_ADMIN_TOKEN=TOKEN, RELAY_PORT=str(port))
        proc = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve", "--workers", "2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.put(f"{base}/api/sources/s", json={}, headers=AUTH).is_success:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "relay serve did not start"
                time.sleep(0.1)
            # New connections each time, so both worker processes take some of them.
            for _ in range(40):
                assert httpx.post(f"{base}/ingest/s", content=b"{}").status_code == 202
            line = 'relay_ingest_total{outcome="accepted",reason="",source="s"}'
            for _ in range(5):  # whichever process answers, the sum is the same
                text = httpx.get(f"{base}/metrics").text
                [sample] = [x for x in text.splitlines() if x.startswith(line)]
                assert float(sample.split()[-1]) == 40
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)
