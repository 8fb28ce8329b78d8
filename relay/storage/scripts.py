"""The Lua scripts in ``lua/``, loaded once, and one typed call object per script.

Each script names its KEYS and ARGV on its first lines
(``local delivery_key, due_key = KEYS[1], KEYS[2]``); its call class lists the same names in
``KEYS`` and ``ARGV``, and :meth:`ScriptCall.keys`/:meth:`ScriptCall.argv` build the lists
from the call's attributes, so no caller keeps positions by hand.
``tests/storage/test_scripts.py`` checks that both sides name the same things in the same
order. A line ``-- include: lib/x.lua`` puts shared Lua (functions used by several scripts)
in front of the script.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

LUA_DIR = Path(__file__).parent / "lua"
_INCLUDE = re.compile(r"^-- include: (\S+)$", re.M)

ArgValue = str | int | bytes | bool | None


def _encode(value: ArgValue) -> str | int | bytes:
    # Lua sees every argument as a string: flags travel as "1"/"0", absent values as "".
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else value


@cache
def source(name: str) -> str:
    """The script's Lua, with the shared Lua it includes put in front."""
    text = (LUA_DIR / f"{name}.lua").read_text()
    libs = [(LUA_DIR / lib).read_text() for lib in _INCLUDE.findall(text)]
    return "\n".join([*libs, text])


class ScriptCall:
    """KEYS and ARGV of one call, by name; subclasses are dataclasses naming ``SCRIPT``."""

    SCRIPT: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]
    ARGV: ClassVar[tuple[str, ...]]

    def keys(self) -> list[str]:
        return [getattr(self, name) for name in self.KEYS] + self.more_keys()

    def argv(self) -> list[str | int | bytes]:
        return [_encode(getattr(self, name)) for name in self.ARGV] + self.more_argv()

    def more_keys(self) -> list[str]:
        """KEYS past the named ones (a list of deliveries, say)."""
        return []

    def more_argv(self) -> list[str | int | bytes]:
        return []


class Scripts:
    """Every script registered once on a client; ``await scripts.run(call)`` runs one.

    Calls made in the same turn of the event loop (concurrent requests, attempts finishing
    together) share one pipeline: one connection checkout, one write, one read for all of
    them. Each script is still its own atomic step, and each caller gets its own reply or
    error; a call made alone goes out at once, as it would without batching.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts: dict[str, AsyncScript] = {}
        self._pending: list[tuple[ScriptCall, asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()

    def script(self, name: str) -> AsyncScript:
        if name not in self._scripts:
            self._scripts[name] = self._redis.register_script(source(name))
        return self._scripts[name]

    async def run(self, call: ScriptCall, client: Any = None) -> Any:
        """Run a call; with ``client`` (a pipeline) it is queued there instead."""
        if client is not None:
            return await self.script(call.SCRIPT)(keys=call.keys(), args=call.argv(), client=client)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((call, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(pending))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _pipelined(self, calls: list[ScriptCall]) -> list[Any]:
        """One round trip of EVALSHAs; any the server does not know are loaded and sent again.

        redis-py's pipelines ask ``SCRIPT EXISTS`` before every execute that holds a script
        object: a second round trip on every batch. A script is missing only after a Redis
        restart or ``SCRIPT FLUSH``, and a NOSCRIPT reply means it did not run, so sending
        it again is safe.
        """
        replies = await self._evalsha(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            for name in {calls[i].SCRIPT for i in missing}:
                await self._redis.script_load(source(name))
            again = await self._evalsha([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _evalsha(self, calls: list[ScriptCall]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in calls:
                keys = call.keys()
                sha = self.script(call.SCRIPT).sha
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *call.argv())
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _send(self, pending: list[tuple[ScriptCall, asyncio.Future[Any]]]) -> None:
        try:
            if len(pending) == 1:
                call, _ = pending[0]
                replies: list[Any] = [
                    await self.script(call.SCRIPT)(keys=call.keys(), args=call.argv())
                ]
            else:
                replies = await self._pipelined([call for call, _ in pending])
        except Exception as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in pending:
                future.cancel()
            raise
        for (_, future), reply in zip(pending, replies, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


# --- one call class per script, in the order of a delivery's life -------------------------


@dataclass(frozen=True, slots=True)
class Ingest(ScriptCall):
    SCRIPT = "ingest"
    KEYS = ("source_key", "idempotency_key", "event_key", "body_key", "events_key",
            "source_events_key", "unfanned_key", "indexes_key", "source_subs_key",
            "every_source_subs_key")  # fmt: skip
    ARGV = ("source_rev", "use_idempotency", "idempotency_ttl_s", "event_id", "received_ms",
            "expire_at_ms", "meta", "body", "deadline_ms")  # fmt: skip

    source_key: str
    idempotency_key: str
    event_key: str
    body_key: str
    events_key: str
    source_events_key: str
    unfanned_key: str
    indexes_key: str
    source_subs_key: str
    every_source_subs_key: str
    source_rev: str
    use_idempotency: bool
    idempotency_ttl_s: int
    event_id: str
    received_ms: int
    expire_at_ms: int
    meta: bytes
    body: bytes
    deadline_ms: int  # on Redis's clock; 0: none


@dataclass(frozen=True, slots=True)
class FanoutRow:
    """One delivery as ``fanout`` creates it."""

    delivery_id: str
    sub_id: str
    mode: str
    inline: bool  # in flight for the caller, who attempts it now; due_ms is its lease
    due_ms: int
    ordered: bool
    okey: str


@dataclass(frozen=True, slots=True)
class FanoutEvent:
    event_id: str
    rows: Sequence[FanoutRow]
    skipped: Sequence[tuple[str, str]] = ()  # (subscription id, the condition that failed)
    after: str = ""  # the fan-out cursor this chunk starts from ("": the first chunk)
    upto: str = ""  # the cursor it leaves ("": the last chunk)


@dataclass(frozen=True, slots=True)
class Fanout(ScriptCall):
    SCRIPT = "fanout"
    KEYS = ("unfanned_key", "all_deliveries_key", "indexes_key", "subs_rev_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "now_ms", "expire_at_ms", "planned_rev", "fan_out")

    unfanned_key: str
    all_deliveries_key: str
    indexes_key: str
    subs_rev_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    now_ms: int
    expire_at_ms: int
    planned_rev: str
    fan_out: bool
    events: Sequence[FanoutEvent] = field(default=())

    def more_argv(self) -> list[str | int | bytes]:
        argv: list[str | int | bytes] = []
        for event in self.events:
            argv += ["E", event.event_id, len(event.rows), len(event.skipped), event.after,
                     event.upto]  # fmt: skip
            for r in event.rows:
                argv += [r.delivery_id, r.sub_id, r.mode, _encode(r.inline), r.due_ms,
                         _encode(r.ordered), r.okey]  # fmt: skip
            for sub_id, why in event.skipped:
                argv += [sub_id, why]
        return argv


@dataclass(frozen=True, slots=True)
class ClaimLane(ScriptCall):
    SCRIPT = "claim_lane"
    KEYS = ("lane_key", "flight_key", "state_key", "sub_key", "failing_key")
    ARGV = ("prefix", "sub_id", "now_ms", "lease_until_ms", "want", "max_concurrency",
            "rate_limit", "job_id", "worker_id", "probes")  # fmt: skip

    lane_key: str
    flight_key: str
    state_key: str
    sub_key: str
    failing_key: str
    prefix: str
    sub_id: str
    now_ms: int
    lease_until_ms: int
    want: int
    max_concurrency: int
    rate_limit: float
    job_id: str
    worker_id: str
    probes: int


@dataclass(frozen=True, slots=True)
class ReleaseLane(ScriptCall):
    SCRIPT = "release_lane"
    KEYS = ("lane_key", "state_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "sub_id", "now_ms")

    lane_key: str
    state_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class WakeLane(ScriptCall):
    SCRIPT = "wake_lane"
    KEYS = ("lane_key", "state_key", "sub_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "sub_id", "now_ms")

    lane_key: str
    state_key: str
    sub_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    now_ms: int


@dataclass(frozen=True, slots=True)
class YieldLane(ScriptCall):
    SCRIPT = "yield_lane"
    KEYS = ("lane_key", "flight_key", "state_key", "heads_key", "sub_key", "queue_key",
            "lanes_key")  # fmt: skip
    ARGV = ("prefix", "job_prefix", "sub_id", "job_id", "now_ms", "exhausted")

    lane_key: str
    flight_key: str
    state_key: str
    heads_key: str
    sub_key: str
    queue_key: str
    lanes_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    job_id: str
    now_ms: int
    exhausted: bool


@dataclass(frozen=True, slots=True)
class StartLane(ScriptCall):
    SCRIPT = "start_lane"
    KEYS = ("state_key", "queue_key")
    ARGV = ("job_id", "until_ms")

    state_key: str
    queue_key: str
    job_id: str
    until_ms: int


@dataclass(frozen=True, slots=True)
class TakeJobs(ScriptCall):
    SCRIPT = "take_jobs"
    KEYS = ("queue_key",)
    ARGV = ("in_progress_prefix", "now_ms", "timeout_ms")

    queue_key: str
    in_progress_prefix: str
    now_ms: int
    timeout_ms: int
    job_ids: Sequence[str] = field(default=())

    def more_argv(self) -> list[str | int | bytes]:
        return list(self.job_ids)


@dataclass(frozen=True, slots=True)
class OpsThresholds(ScriptCall):
    SCRIPT = "ops_thresholds"
    KEYS = ("lane_key", "flight_key", "sub_dead_key", "alerts_key", "sub_key")
    ARGV = ("prefix", "sub_id", "ops", "backlog_high", "backlog_low", "dead_high", "dead_low")

    lane_key: str
    flight_key: str
    sub_dead_key: str
    alerts_key: str
    sub_key: str
    prefix: str
    sub_id: str
    ops: bytes
    backlog_high: int
    backlog_low: int
    dead_high: int
    dead_low: int


@dataclass(frozen=True, slots=True)
class OpsEviction(ScriptCall):
    SCRIPT = "ops_eviction"
    KEYS = ("alerts_key",)
    ARGV = ("prefix", "ops", "policy", "required")

    alerts_key: str
    prefix: str
    ops: bytes
    policy: str
    required: str


@dataclass(frozen=True, slots=True)
class ArmLanes(ScriptCall):
    SCRIPT = "arm_lanes"
    KEYS = ("queue_key", "workers_key")
    ARGV = ("prefix", "job_prefix", "in_progress_prefix", "now_ms", "holder_cutoff_ms")

    queue_key: str
    workers_key: str
    prefix: str
    job_prefix: str
    in_progress_prefix: str
    now_ms: int
    holder_cutoff_ms: int
    sub_ids: Sequence[str] = field(default=())

    def more_argv(self) -> list[str | int | bytes]:
        return list(self.sub_ids)


@dataclass(frozen=True, slots=True)
class TrimLanes(ScriptCall):
    SCRIPT = "trim_lanes"
    KEYS = ()
    ARGV = ("prefix", "cutoff_ms", "now_ms", "limit")

    prefix: str
    cutoff_ms: int
    now_ms: int
    limit: int
    sub_ids: Sequence[str] = field(default=())

    def more_argv(self) -> list[str | int | bytes]:
        return list(self.sub_ids)


@dataclass(frozen=True, slots=True)
class RecordAttempt(ScriptCall):
    SCRIPT = "record_attempt"
    KEYS = ("delivery_key", "attempts_key", "lane_key", "flight_key", "state_key", "dead_key",
            "sub_key", "sub_dead_key", "indexes_key", "failing_key", "subs_rev_key",
            "stats_key")  # fmt: skip
    ARGV = ("prefix", "sub_id", "delivery_id", "number", "attempt_json", "status", "now_ms",
            "next_attempt_at", "status_code", "error", "dead_letter", "disable_reason",
            "failing", "failing_seen", "failing_since", "failing_ttl_ms", "failing_disable",
            "hold_until", "stats_ttl_ms", "ops", "hold_reason", "counted", "bucket",
            "transition", "trips")  # fmt: skip

    delivery_key: str
    attempts_key: str
    lane_key: str
    flight_key: str
    state_key: str
    dead_key: str
    sub_key: str
    sub_dead_key: str
    indexes_key: str
    failing_key: str
    subs_rev_key: str
    stats_key: str
    prefix: str
    sub_id: str
    delivery_id: str
    number: int
    attempt_json: str
    status: str
    now_ms: int
    next_attempt_at: int | None
    status_code: int | None
    error: str | None
    dead_letter: bool
    disable_reason: str | None
    failing: str  # "reset", "count" or ""
    failing_seen: int | None
    failing_since: int
    failing_ttl_ms: int
    failing_disable: str | None
    hold_until: int | None
    stats_ttl_ms: int
    ops: bytes | None
    # The lane's step (relay.domain.breaker.LaneStep).
    hold_reason: str
    counted: str
    bucket: int
    transition: str
    trips: int


@dataclass(frozen=True, slots=True)
class Reopen(ScriptCall):
    SCRIPT = "reopen"
    KEYS = ("delivery_key", "dead_key", "sub_dead_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "sub_id", "delivery_id", "now_ms", "only_dead")

    delivery_key: str
    dead_key: str
    sub_dead_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    delivery_id: str
    now_ms: int
    only_dead: bool


@dataclass(frozen=True, slots=True)
class Pause(ScriptCall):
    SCRIPT = "pause"
    KEYS = ("sub_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "sub_id", "pause", "now_ms")

    sub_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    pause: bool
    now_ms: int


@dataclass(frozen=True, slots=True)
class SaveSubscription(ScriptCall):
    SCRIPT = "save_subscription"
    KEYS = ("sub_key", "subs_key", "failing_key", "subs_rev_key", "state_key")
    ARGV = ("sub_id", "config", "enabled", "disabled_reason", "fresh_start", "leaving")

    sub_key: str
    subs_key: str
    failing_key: str
    subs_rev_key: str
    state_key: str
    sub_id: str
    config: bytes
    enabled: bool
    disabled_reason: str | None
    fresh_start: bool
    leave: Sequence[str] = field(default=())
    join: Sequence[str] = field(default=())

    @property
    def leaving(self) -> int:
        return len(self.leave)

    def more_keys(self) -> list[str]:
        return [*self.leave, *self.join]


@dataclass(frozen=True, slots=True)
class DeleteSubscription(ScriptCall):
    SCRIPT = "delete_subscription"
    KEYS = ("sub_key", "subs_key", "failing_key", "subs_rev_key", "queue_key")
    ARGV = ("prefix", "job_prefix", "sub_id", "now_ms")

    sub_key: str
    subs_key: str
    failing_key: str
    subs_rev_key: str
    queue_key: str
    prefix: str
    job_prefix: str
    sub_id: str
    now_ms: int
    source_indexes: Sequence[str] = field(default=())

    def more_keys(self) -> list[str]:
        return list(self.source_indexes)


@dataclass(frozen=True, slots=True)
class ForgetEmptyIndexes(ScriptCall):
    SCRIPT = "forget_empty_indexes"
    KEYS = ("registry_key",)
    ARGV = ()

    registry_key: str
    candidates: Sequence[str] = field(default=())

    def more_keys(self) -> list[str]:
        return list(self.candidates)


@dataclass(frozen=True, slots=True)
class MigrateLanes(ScriptCall):
    SCRIPT = "migrate_lanes"
    KEYS = ("old_key",)
    ARGV = ("prefix", "limit")

    old_key: str
    prefix: str
    limit: int


CALLS: tuple[type[ScriptCall], ...] = (
    Ingest, Fanout, ClaimLane, RecordAttempt, YieldLane, ArmLanes, Reopen, Pause,
    SaveSubscription, DeleteSubscription, ForgetEmptyIndexes, MigrateLanes, StartLane,
    OpsThresholds, OpsEviction, TrimLanes, TakeJobs, ReleaseLane, WakeLane,
)  # fmt: skip
