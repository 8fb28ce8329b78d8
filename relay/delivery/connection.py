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
(``redis.recovered``), instead of a traceback per failed call. A Redis that refuses writes
because it reached ``maxmemory`` (``OOM``, with ``noeviction``) is an outage like a
stopped one: every caller that rides out an outage rides out this one too. It ends when
a write is taken again (:mod:`relay.delivery.redis_watch` tries one), not at the next
answered read.

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
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.settings import Settings
from relay.observability import metrics

log = structlog.get_logger("relay.redis")

# What "Redis is away" looks like to a caller once the retries are spent (LOADING after a
# restart is a ConnectionError too; redis-py wraps socket errors in these). A full Redis
# refuses each write before running it (a script, before its first write): nothing is
# half done, and the caller waits and tries again as for a stopped Redis.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OutOfMemoryError)

# Why Redis is unavailable, for /readyz, the metrics and the log line.
UNREACHABLE, OUT_OF_MEMORY = "unreachable", "out_of_memory"

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
# A script refuses work that reaches Redis this close to the time its caller gives up
# (a tenth of the socket timeout, at least 20 ms): its answer must still get back in time.
_DEADLINE_MARGIN, _DEADLINE_MARGIN_MIN_MS = 0.1, 20.0


class RedisHealth:
    """Logs the start and the end of an outage once each, whatever the number of calls.

    ``cause`` says what kind of outage it is (``unreachable``, ``out_of_memory``), None
    outside one; ``evicting`` is the ``maxmemory-policy`` found when it is not
    ``noeviction`` (set by :mod:`relay.delivery.redis_watch`). Both are exported as
    ``relay_redis_unavailable`` and answered by ``/readyz``.
    """

    def __init__(self, target: str = "") -> None:
        self.target = target  # where Redis is looked for: what an operator would check
        self.down_since: float | None = None
        self.cause: str | None = None
        self.last_failure = float("-inf")
        self.recovered_at = float("-inf")
        self.failures = 0
        self.evicting: str | None = None
        # Redis's clock minus ours (ms), and how far that estimate may be off; None until
        # measured (relay.delivery.redis_watch).
        self.clock_offset_ms: int | None = None
        self.clock_error_ms = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> RedisHealth:
        return cls(redacted_target(settings))

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        self.last_failure = time.monotonic()
        cause = OUT_OF_MEMORY if isinstance(error, OutOfMemoryError) else UNREACHABLE
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("redis.unavailable", redis=self.target, cause=cause, error=describe(error))
            metrics.REDIS_OUTAGES.labels(cause).inc()
        if cause != self.cause and (self.cause is None or cause == OUT_OF_MEMORY):
            # A full Redis that also drops a connection is still full until a write is taken.
            self._set_cause(cause)

    def ok(self) -> None:
        """A command was answered. Reads go on while a full Redis refuses writes: that
        outage ends only with :meth:`wrote`."""
        if self.cause != OUT_OF_MEMORY:
            self._end()

    def wrote(self) -> None:
        """A write was taken: whatever the outage was, it is over."""
        self._end()

    def _end(self) -> None:
        if self.down_since is not None and time.monotonic() - self.last_failure >= _SETTLE_S:
            down_s = round(time.monotonic() - self.down_since, 2)
            log.info("redis.recovered", down_s=down_s, failed_calls=self.failures, cause=self.cause)
            self.down_since, self.failures = None, 0
            self._set_cause(None)
            self.recovered_at = time.monotonic()

    def _set_cause(self, cause: str | None) -> None:
        for known in (UNREACHABLE, OUT_OF_MEMORY):
            metrics.REDIS_UNAVAILABLE.labels(known).set(1 if known == cause else 0)
        self.cause = cause

    def set_evicting(self, policy: str | None) -> bool:
        """The eviction policy just read (None: ``noeviction``); whether it changed."""
        changed = policy != self.evicting
        self.evicting = policy
        metrics.REDIS_EVICTING.set(1 if policy else 0)
        return changed

    def redis_deadline_ms(self, after_s: float) -> int:
        """``after_s`` from now on Redis's clock, less the estimate's error and a margin for
        the answer's way back; 0 (no deadline) until Redis's clock was read."""
        if self.clock_offset_ms is None:
            return 0
        margin_ms = max(_DEADLINE_MARGIN_MIN_MS, after_s * 1000 * _DEADLINE_MARGIN)
        redis_now_ms = time.time() * 1000 + self.clock_offset_ms
        return int(redis_now_ms + after_s * 1000 - margin_ms - self.clock_error_ms)

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

        try:
            result = await super().call_with_retry(do, failed)
        except OutOfMemoryError as exc:
            # Not retried here (it is no connection fault), but an outage all the same.
            self._health.failed(exc)
            raise
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
