"""Admin commands start fast: they never import the server stack.

Measured on the author's machine: `relay events list --help` took 0.83-0.89 s of CPU when
relay/cli imported the API and the worker, 0.20-0.24 s after (see the issue's closing note).
The timing itself is a benchmark's business; this checks the cause, in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_STACK = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "arq",
    "redis",
    "jinja2",
    "structlog",
    "yaml",
    "config.settings",
    "relay.api",
    "relay.delivery",
    "relay.storage",
    "relay.domain.models",
    "workers",
)

PROBE = """
import json, sys
from relay.cli import app
try:
    app(sys.argv[1:], prog_name="relay")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "80", "PATH": "/usr/bin:/bin", "RELAY_URL": "http://127.0.0.1:9"},
        check=False,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == s or m.startswith(s + ".") for s in SERVER_STACK))


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("events", "list", "--help"),
        # A real call (to a port nothing listens on): parsing, connecting, the error line.
        ("events", "list"),
        ("deliveries", "list", "--status", "dead"),
        ("subscriptions", "list"),
        ("replay", "dead-letters", "--help"),
    ],
)
def test_admin_commands_do_not_import_the_server_stack(args: tuple[str, ...]) -> None:
    assert heavy(loaded_by(*args)) == []


def test_server_commands_still_load_it() -> None:
    # The probe can see the server stack at all: `relay serve` without Redis stops at once.
    assert "config.settings" in loaded_by("serve")
