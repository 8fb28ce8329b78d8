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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

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
    """Every script registered once on a client; ``await scripts.run(call)`` runs one."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._scripts: dict[str, AsyncScript] = {}

    def script(self, name: str) -> AsyncScript:
        if name not in self._scripts:
            self._scripts[name] = self._redis.register_script(source(name))
        return self._scripts[name]

    async def run(self, call: ScriptCall, client: Any = None) -> Any:
        """Run a call; with ``client`` (a pipeline) it is queued there instead."""
        return await self.script(call.SCRIPT)(keys=call.keys(), args=call.argv(), client=client)


# --- one call class per script, in the order of a delivery's life -------------------------


@dataclass(frozen=True, slots=True)
class Ingest(ScriptCall):
    SCRIPT = "ingest"
    KEYS = ("source_key", "idempotency_key", "event_key", "body_key", "events_key",
            "source_events_key", "unfanned_key", "indexes_key")  # fmt: skip
    ARGV = ("source_rev", "use_idempotency", "idempotency_ttl_s", "event_id", "received_ms",
            "expire_at_ms", "meta", "body")  # fmt: skip

    source_key: str
    idempotency_key: str
    event_key: str
    body_key: str
    events_key: str
    source_events_key: str
    unfanned_key: str
    indexes_key: str
    source_rev: str
    use_idempotency: bool
    idempotency_ttl_s: int
    event_id: str
    received_ms: int
    expire_at_ms: int
    meta: bytes
    body: bytes


@dataclass(frozen=True, slots=True)
class NewDeliveryRow:
    """One delivery as ``add_deliveries`` writes it."""

    delivery_key: str
    sub_deliveries_key: str
    delivery_id: str
    due_ms: int
    fields: bytes  # a JSON object of strings


@dataclass(frozen=True, slots=True)
class AddDeliveries(ScriptCall):
    SCRIPT = "add_deliveries"
    KEYS = ("unfanned_key", "event_key", "event_deliveries_key", "due_key",
            "all_deliveries_key", "body_key", "indexes_key")  # fmt: skip
    ARGV = ("event_id", "now_ms", "fan_out", "expire_at_ms")

    unfanned_key: str
    event_key: str
    event_deliveries_key: str
    due_key: str
    all_deliveries_key: str
    body_key: str
    indexes_key: str
    event_id: str
    now_ms: int
    fan_out: bool
    expire_at_ms: int
    rows: Sequence[NewDeliveryRow] = field(default=())

    def more_keys(self) -> list[str]:
        return [k for r in self.rows for k in (r.delivery_key, r.sub_deliveries_key)]

    def more_argv(self) -> list[str | int | bytes]:
        return [a for r in self.rows for a in (r.delivery_id, r.due_ms, r.fields)]


@dataclass(frozen=True, slots=True)
class Claim(ScriptCall):
    SCRIPT = "claim"
    KEYS = ("delivery_key", "due_key", "sub_key", "paused_key")
    ARGV = ("delivery_id", "attempt", "now_ms", "lease_until_ms", "ignore_pause")

    delivery_key: str
    due_key: str
    sub_key: str
    paused_key: str
    delivery_id: str
    attempt: int
    now_ms: int
    lease_until_ms: int
    ignore_pause: bool


@dataclass(frozen=True, slots=True)
class RecordAttempt(ScriptCall):
    SCRIPT = "record_attempt"
    KEYS = ("delivery_key", "attempts_key", "due_key", "dead_key", "sub_key", "sub_dead_key",
            "indexes_key", "failing_key")  # fmt: skip
    ARGV = ("delivery_id", "number", "attempt_json", "status", "due_ms", "now_ms",
            "next_attempt_at", "status_code", "error", "dead_letter", "disable_reason",
            "failing", "failing_seen", "failing_since", "failing_ttl_ms",
            "failing_disable")  # fmt: skip

    delivery_key: str
    attempts_key: str
    due_key: str
    dead_key: str
    sub_key: str
    sub_dead_key: str
    indexes_key: str
    failing_key: str
    delivery_id: str
    number: int
    attempt_json: str
    status: str
    due_ms: int | None
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


@dataclass(frozen=True, slots=True)
class Reopen(ScriptCall):
    SCRIPT = "reopen"
    KEYS = ("delivery_key", "due_key", "dead_key", "sub_dead_key")
    ARGV = ("delivery_id", "now_ms", "only_dead")

    delivery_key: str
    due_key: str
    dead_key: str
    sub_dead_key: str
    delivery_id: str
    now_ms: int
    only_dead: bool


@dataclass(frozen=True, slots=True)
class Pause(ScriptCall):
    SCRIPT = "pause"
    KEYS = ("sub_key", "paused_key", "due_key")
    ARGV = ("pause",)

    sub_key: str
    paused_key: str
    due_key: str
    pause: bool


@dataclass(frozen=True, slots=True)
class SaveSubscription(ScriptCall):
    SCRIPT = "save_subscription"
    KEYS = ("sub_key", "subs_key", "failing_key")
    ARGV = ("sub_id", "config", "enabled", "disabled_reason", "fresh_start", "leaving")

    sub_key: str
    subs_key: str
    failing_key: str
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
    KEYS = ("sub_key", "paused_key", "due_key", "subs_key", "failing_key")
    ARGV = ("sub_id",)

    sub_key: str
    paused_key: str
    due_key: str
    subs_key: str
    failing_key: str
    sub_id: str
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


CALLS: tuple[type[ScriptCall], ...] = (
    Ingest, AddDeliveries, Claim, RecordAttempt, Reopen, Pause, SaveSubscription,
    DeleteSubscription, ForgetEmptyIndexes,
)  # fmt: skip
