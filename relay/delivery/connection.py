"""How every relay process reaches Redis: timeouts, retries, Sentinel, and the outage log.

One function builds every client (the API's, the worker's ARQ pool), so both ride out a
Redis restart, a failover or a stall the same way, through redis-py's own configuration:

- ``socket_timeout`` bounds each command (``RELAY_REDIS_SOCKET_TIMEOUT_S``): a stalled
  Redis costs a request that long, then a 503, not the length of the stall.
- A :class:`Retry` with exponential backoff reconnects after a dropped connection. The API
  tries once more and then answers 503 (the sender retries; a timed-out command may have run,
  so it is not sent again); the worker keeps trying for about 15 s, timeouts included, so a
  restart or a failover happens under a running lane job instead of failing it.
- With Sentinel, each new connection asks the sentinels for the current primary, and a
  primary that was demoted answers READONLY, which redis-py turns into a reconnect.

:class:`RedisHealth` sees every command's outcome through the retry object and logs an
outage once when it starts (``redis.unavailable``) and once when it ends
(``redis.recovered``), instead of a traceback per failed call.

    redis = redis_client(settings, API, Redis)             # redis.asyncio.Redis
    pool = redis_client(settings, WORKER, cls=ArqRedis)    # ARQ's pool, same rules
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.settings import Settings

log = structlog.get_logger("relay.redis")

# What "Redis is away" looks like to a caller once the retries are spent (LOADING after a
# restart is a ConnectionError too; redis-py wraps socket errors in these).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)

R = TypeVar("R", bound=Redis)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Profile:
    """How long a process keeps trying before an error reaches its caller."""

    retries: int
    retry_on_timeout: bool


# 503 within about one socket timeout: a webhook sender retries on its own.
API = Profile(retries=1, retry_on_timeout=False)
# Backoff 0.05 s doubling to 2 s, 10 tries: about 15 s, more than a restart or a failover.
WORKER = Profile(retries=10, retry_on_timeout=True)
_BACKOFF_CAP_S, _BACKOFF_BASE_S = 2.0, 0.05
# A stopped Redis still accepts TCP connections (the kernel does): a success this soon after
# a failure is a reconnect, not the end of the outage.
_SETTLE_S = 1.0


class RedisHealth:
    """Logs the start and the end of an outage once each, whatever the number of calls."""

    def __init__(self, target: str = "") -> None:
        self.target = target  # where Redis is looked for: what an operator would check
        self.down_since: float | None = None
        self.last_failure = float("-inf")
        self.recovered_at = float("-inf")
        self.failures = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> RedisHealth:
        return cls(redacted_target(settings))

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        self.last_failure = time.monotonic()
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("redis.unavailable", redis=self.target, error=describe(error))

    def ok(self) -> None:
        if self.down_since is not None and time.monotonic() - self.last_failure >= _SETTLE_S:
            down_s = round(time.monotonic() - self.down_since, 2)
            log.info("redis.recovered", down_s=down_s, failed_calls=self.failures)
            self.down_since, self.failures = None, 0
            self.recovered_at = time.monotonic()

    def steady_for_s(self) -> float:
        """Seconds since the last outage ended (0 during one; inf if there was none)."""
        if self.down_since is not None:
            return 0.0
        return time.monotonic() - self.recovered_at

    def __deepcopy__(self, memo: dict[int, Any]) -> RedisHealth:
        # redis-py deep-copies the retry object into every connection: they must all report
        # to this one.
        return self


class _ObservedRetry(Retry):
    """redis-py's retry, telling :class:`RedisHealth` how each call went."""

    __slots__ = ("_health",)

    def __init__(self, health: RedisHealth, retries: int) -> None:
        super().__init__(ExponentialBackoff(cap=_BACKOFF_CAP_S, base=_BACKOFF_BASE_S), retries)
        self._health = health

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Callable[[RedisError], Any]
    ) -> T:
        async def failed(error: RedisError) -> None:
            self._health.failed(error)
            await fail(error)

        result = await super().call_with_retry(do, failed)
        # A connect returns None, and a stopped Redis's kernel still accepts connections: only
        # a reply (commands that find nothing aside) says Redis is back.
        if result is not None:
            self._health.ok()
        return result


def describe(error: BaseException) -> str:
    return f"{error.__class__.__name__}: {error}"[:200]


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def sentinel_target(settings: Settings) -> SentinelTarget | None:
    """Where the sentinels are, from RELAY_REDIS_SENTINELS or a ``redis+sentinel://`` URL
    (``redis+sentinel://[user:password@]host:port[,host:port...]/master[/db]``)."""
    url = settings.redis_url or ""
    if not settings.redis_sentinels and not url.startswith("redis+sentinel://"):
        return None
    netloc, _, path = url.removeprefix("redis+sentinel://").partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    parts = [p for p in path.split("/") if p]
    addresses = settings.redis_sentinels or tuple(h for h in hosts.split(",") if h)
    return SentinelTarget(
        sentinels=tuple(_host_port(a) for a in addresses),
        master=parts[0] if parts else settings.redis_sentinel_master,
        db=int(parts[1]) if len(parts) > 1 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"sentinel address {address!r} is not host:port")
    return host, int(port)


def redis_client(
    settings: Settings, profile: Profile, cls: type[R], health: RedisHealth | None = None
) -> R:
    """A client (of ``cls``: Redis, or ARQ's ArqRedis) that connects lazily: building it
    needs no Redis, the first command does."""
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_socket_timeout_s,
        "retry": _ObservedRetry(health or RedisHealth.for_settings(settings), profile.retries),
        "retry_on_error": [RedisConnectionError]
        + ([RedisTimeoutError] if profile.retry_on_timeout else []),
        "decode_responses": False,
    }
    target = sentinel_target(settings)
    if target is None:
        # redis-py 5 retries a refused connect only when OSError is listed; otherwise every
        # command fails at once while Redis restarts. (With Sentinel it must not be: that
        # retry would keep dialling the dead primary instead of asking the sentinels again,
        # which their connections do on a ConnectionError.)
        options["retry_on_error"].append(OSError)
        return cast(R, cls.from_url(settings.require_redis_url(), **options))
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        list(target.sentinels),
        sentinel_kwargs={
            "socket_timeout": settings.redis_socket_timeout_s,
            "socket_connect_timeout": settings.redis_socket_timeout_s,
        },
    )
    client: R = sentinel.master_for(
        target.master,
        redis_class=cls,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    return client


def redacted_target(settings: Settings) -> str:
    """Where this process looks for Redis, for a log line (no credentials)."""
    target = sentinel_target(settings)
    if target is not None:
        hosts = ",".join(f"{h}:{p}" for h, p in target.sentinels)
        return f"sentinel {hosts} master {target.master}"
    url = settings.require_redis_url()
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


async def first_answer(settings: Settings, timeout_s: float, poll_s: float = 0.5) -> str | None:
    """Wait for Redis to answer a PING, for at most ``timeout_s`` (0: as long as it takes).

    None once it answered, else why it did not (the last error). A process that starts
    before its Redis (containers starting together) gets that long; after it, a wrong
    address should stop the process with one line rather than leave it looking alive.
    """
    client = redis_client(settings, API, Redis, RedisHealth.for_settings(settings))
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while True:
            try:
                await client.ping()
                return None
            except (*UNAVAILABLE, OSError) as exc:
                last = describe(exc)
            if timeout_s and asyncio.get_running_loop().time() >= deadline:
                return last
            await asyncio.sleep(poll_s)
    finally:
        await client.aclose()
