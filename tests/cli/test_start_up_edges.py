"""Starting things a second time: a busy port, a data directory in use, and `relay receiver`
with scripted answers, delays and signature checks, run as a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.devtools.embedded_redis import free_port
from relay.domain.signing import generate_secret, signed_headers
from tests.cli.test_dev_command import start_dev, stop_dev


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return {**env, **extra}


def relay_cli(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_dev_on_a_busy_port_says_so_in_one_line_and_never_claims_to_listen(
    busy_port: int, tmp_path: Path
) -> None:
    done = relay_cli(
        "dev",
        env=clean_env(RELAY_PORT=str(busy_port), RELAY_DATA_DIR=str(tmp_path / "data")),
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"relay: port {busy_port} on 127.0.0.1 is in use: is another relay running? Or pass --port"
    )
    assert "listening" not in done.stdout + done.stderr
    # Nothing was started or written: no Redis, no token.
    assert not (tmp_path / "data" / "admin-token").exists()


def test_a_second_dev_on_the_same_data_directory_refuses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_dev(data, free_port())
    try:
        second = relay_cli(
            "dev", env=clean_env(RELAY_PORT=str(free_port()), RELAY_DATA_DIR=str(data))
        )
        assert second.returncode == 1
        [line] = second.stderr.strip().splitlines()
        assert line == (
            f"relay: {data} is in use by another relay dev (pid {first.pid}): stop it, "
            "or give this one its own RELAY_DATA_DIR"
        )
    finally:
        stop_dev(first)
    # Stopped (or killed: the kernel drops the lock): the directory is free again.
    again = start_dev(data, free_port())
    stop_dev(again)


def test_receiver_on_a_busy_port_says_so_in_one_line(busy_port: int) -> None:
    done = relay_cli("receiver", "--port", str(busy_port), env=clean_env())
    assert done.returncode == 1
    assert done.stderr.strip() == f"relay: port {busy_port} on 127.0.0.1 is in use: pass --port"


def post_until_up(url: str, **kwargs: object) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.post(url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            assert time.monotonic() < deadline, "relay receiver did not start"
            time.sleep(0.05)


def test_receiver_scripts_statuses_delays_and_checks_signatures() -> None:
    port = free_port()
    secret = generate_secret()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay.cli",
            "receiver",
            "--port",
            str(port),
            "--status",
            "503,200",
            "--delay",
            "0.3",
            "--secret",
            secret,
        ],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/hook"
    body = '{"text":"héllo","n":1}'.encode()
    answers = []
    try:
        for n in range(3):
            headers = signed_headers([secret], f"msg_{n}", int(time.time()), body)
            started = time.monotonic()
            answers.append((post_until_up(url, content=body, headers=headers), started))
        forged = signed_headers([generate_secret()], "msg_x", int(time.time()), body)
        bad = post_until_up(url, content=body, headers=forged)
        unsigned = post_until_up(url, content=b"not json \xff")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert [r.status_code for r, _ in answers] == [503, 200, 200]  # the last one repeats
    assert all(r.elapsed.total_seconds() >= 0.3 for r, _ in answers[1:])
    assert bad.status_code == 401
    assert bad.text.startswith("bad signature: ")
    assert unsigned.status_code == 401
    assert "checking signatures" in err
    lines = out.splitlines()
    assert len(lines) == 5
    assert " 503 <- msg_0 " in lines[0]
    assert " signature=ok " in lines[0]
    # The body as text, not a bytes repr.
    assert lines[0].endswith('body={"text":"héllo","n":1}')
    assert "b'" not in out
    assert " 401 <- msg_x " in lines[3]
    assert "signature=" in lines[3]
    assert "signature=ok" not in lines[3]
    assert lines[4].endswith("body=<10 bytes, not UTF-8>")


def test_receiver_refuses_a_secret_that_is_not_one() -> None:
    done = relay_cli("receiver", "--secret", "whsec_!!!", env=clean_env())
    assert done.returncode == 2
    assert "not whsec_ followed by base64" in done.stderr


def test_serve_on_a_busy_port_says_so_before_waiting_for_redis(busy_port: int) -> None:
    env = clean_env(RELAY_PORT=str(busy_port), RELAY_REDIS_URL="redis://127.0.0.1:9/0")
    done = relay_cli("serve", env={**env, "RELAY_ADMIN_TOKEN": "t" * 32})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"relay: port {busy_port} on 127.0.0.1 is in use: stop what uses it, or pass --port"
    )
