"""`relay receiver` as a user runs it for the walk-through: what it prints and answers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from relay.devtools.embedded_redis import free_port

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\d{3}) <- evt_1 attempt (\d) ")


def test_receiver_stamps_each_request_and_its_503s_do_not_say_ok() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay.cli", "receiver", "--port", str(port), "--fail-first", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/hook"
        deadline = time.monotonic() + 20
        answers = []
        while len(answers) < 2:
            assert proc.poll() is None, "relay receiver exited"
            assert time.monotonic() < deadline, "relay receiver did not start"
            headers = {"webhook-id": "evt_1", "x-relay-attempt": str(len(answers) + 1)}
            try:
                answers.append(httpx.post(url, content=b"{}", headers=headers))
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert [(r.status_code, r.text) for r in answers] == [(503, "Service Unavailable"), (200, "ok")]
    printed = [STAMPED.match(line) for line in out.decode().splitlines()]
    assert [m.groups() if m else None for m in printed] == [("503", "1"), ("200", "2")]
