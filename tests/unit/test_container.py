"""The Dockerfile and docker-compose.yml, read as Docker would (no Docker daemon here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from relay.api.health import router as health_router

ROOT = Path(__file__).resolve().parents[2]
PINNED_PYTHON = re.compile(r"^python:3\.\d+\.\d+-slim-bookworm$")


def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return services["services"]


def substituted(value: str) -> str:
    """``${NAME:-default}`` as compose reads it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def probed_url(service: dict[str, Any]) -> str:
    command = " ".join(service["healthcheck"]["test"])
    [url] = re.findall(r"http://127\.0\.0\.1:[^']+", command)
    return url


def test_the_image_is_pinned_and_checks_its_own_health() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases
    assert all(PINNED_PYTHON.match(base) for base in bases), bases
    healthcheck = "\n".join(lines[lines.index(next(ln for ln in lines if "HEALTHCHECK" in ln)) :])
    assert "/healthz" in healthcheck
    assert "/healthz" in {getattr(route, "path", None) for route in health_router.routes}


def test_api_and_worker_restart_and_report_their_health() -> None:
    services = compose()
    for name in ("api", "worker", "redis"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    redis_image = services["redis"]["image"]
    assert re.match(r"^redis:\d+\.\d+\.\d+-alpine$", redis_image), redis_image

    api, worker = services["api"], services["worker"]
    assert probed_url(api) == "http://127.0.0.1:8000/healthz"
    # The worker serves HTTP only for its metrics: the probe must ask the port it serves.
    port = worker["environment"]["RELAY_WORKER_METRICS_PORT"]
    assert probed_url(worker) == f"http://127.0.0.1:{port}/metrics"


def test_the_admin_api_is_published_on_loopback_by_default() -> None:
    published = [substituted(p) for p in compose()["api"]["ports"]]
    assert published == ["127.0.0.1:8000:8000"]
    assert "ports" not in compose()["redis"]
    assert "ports" not in compose()["worker"]
