"""The Docker build as the files describe it (no daemon needed): what the context may
carry, that dependencies come from the lock, and that compose builds one image."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pattern(rule: str) -> re.Pattern[str]:
    """A .dockerignore rule as Docker reads it (Go's filepath.Match, plus ``**``)."""
    out = ""
    i = 0
    while i < len(rule):
        if rule.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif rule.startswith("**", i):
            out += ".*"
            i += 2
        elif rule[i] == "*":
            out += "[^/]*"
            i += 1
        elif rule[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(rule[i])
            i += 1
    return re.compile(out)


def _rules() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker leaves a path out when it, or a directory above it, matches a rule."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(_pattern(rule).fullmatch(p) for rule in _rules() for p in prefixes)


@pytest.mark.parametrize(
    "path",
    [
        ".relay-data/admin-token",
        ".relay-data/appendonlydir/appendonly.aof.1.incr.aof",
        "sub/dir/.relay-data/admin-token",
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "relay/__pycache__/main.cpython-312.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.12/relay/main.data.json",
        ".ruff_cache/CACHEDIR.TAG",
        "webhook_relay.egg-info/PKG-INFO",
        "tests/conftest.py",
    ],
)
def test_the_build_context_leaves_out_secrets_state_and_caches(path: str) -> None:
    assert ignored(path)


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [
        source
        for line in dockerfile.splitlines()
        if line.startswith("COPY") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    assert "requirements.lock" in copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not ignored(source), source
    assert not ignored("relay/cli/main.py")
    assert not ignored("relay/storage/lua/record_attempt.lua")


def _name(requirement: str) -> str:
    """``uvicorn[standard]>=0.30`` -> ``uvicorn``, normalised as pip compares names."""
    name = re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_dependency_exactly() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", line) for line in lines), lines
    pinned = {_name(line) for line in lines}
    missing = {_name(dep) for dep in project["dependencies"]} - pinned
    assert not missing, f"run scripts/lock: requirements.lock lacks {sorted(missing)}"


def test_the_build_backend_is_locked_too() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    pinned = {
        _name(line)
        for line in (ROOT / "requirements-build.lock").read_text().splitlines()
        if "==" in line
    }
    assert {_name(dep) for dep in build_system["requires"]} == pinned
    assert "PIP_CONSTRAINT=requirements-build.lock" in (ROOT / "Dockerfile").read_text()


def test_the_image_installs_only_what_the_lock_names() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN ") and "pip " in line]
    assert any("-r requirements.lock" in run and "--no-deps" in run for run in runs)
    # Every pip command builds or installs without resolving dependencies afresh.
    assert all("--no-deps" in run for run in runs), runs
    assert any("install" in run and "--no-index" in run for run in runs), runs


def test_compose_builds_one_image_for_api_and_worker_and_reads_an_env_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert [name for name, s in services.items() if "build" in s] == ["api"]
    assert services["api"]["image"] == services["worker"]["image"]
    assert services["worker"]["pull_policy"] == "never"
    for name in ("api", "worker"):
        [env_file] = services[name]["env_file"]
        assert env_file == {"path": ".env", "required": False}
