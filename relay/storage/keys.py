"""Every Redis key and Lua script the relay uses lives here (``RelayStore`` runs them).

Each state change that matters is one atomic step (a Lua script or a MULTI transaction),
so a process that dies between two lines of Python leaves Redis in a state that the
recovery cron knows how to finish:

- ingest: idempotency check, event record and the "not fanned out yet" index, together.
- add deliveries: the deliveries, the due index and (at fan-out) leaving the unfanned
  index, together; a second fan-out of the same event finds it gone and does nothing.
- claim / record: a delivery moves pending -> delivering -> succeeded, failed (with its
  next due time) or dead, with its attempt appended in the same step.
- reopen / pause: manual retries, dead-letter replays, pause and resume.

Key layout (prefix ``relay:``)::

    source:{name}         hash  config (JSON), rev
    sources               set   source names
    sub:{id}              hash  config (JSON), enabled, disabled_reason, paused
    subs                  set   subscription ids
    subs:src:{source}     set   subscription ids listening to a source ("*": every source)
    evt:{id}              str   event metadata (JSON; never changes)                  [TTL]
    evt:{id}:body         str   the raw body, stored once                             [TTL]
    evt:{id}:dlv          list  delivery ids of the event                             [TTL]
    events                zset  every event id (lexical: ids sort by time)
    events:src:{source}   zset  event ids of one source (lexical)
    events:unfanned       zset  events accepted but not yet fanned out, by receipt ms
    idem:{source}:{key}   str   the first event id for an idempotency key             [TTL]
    dlv:{id}              hash  delivery state                                        [TTL]
    dlv:{id}:att          list  attempt records (JSON)                                [TTL]
    dlv:all               zset  every delivery id (lexical)
    dlv:sub:{id}          zset  delivery ids of one subscription (lexical)
    dlv:due               zset  live deliveries by when they next need attention (ms)
    dlv:dead              zset  dead deliveries, the dead-letter index (lexical)
    dlv:dead:{sub id}     zset  dead deliveries of one subscription (lexical)
    dlv:paused:{sub id}   zset  deliveries parked while their subscription is paused
    workers               zset  worker ids by their last heartbeat (ms)
    indexes               set   names of the per-source and per-subscription indexes

Records expire on their own (``RELAY_RETENTION_DAYS``, set when they are written); the
indexes hold only ids, sorted by time, and are trimmed by range, never by scanning keys.
"""

from __future__ import annotations

PREFIX = "relay:"

# A worker beats every HEARTBEAT_S; after three missed beats it no longer counts as alive.
HEARTBEAT_S = 5.0
HEARTBEAT_STALE_MS = int(3 * HEARTBEAT_S * 1000)


class Keys:
    """Key names, in one place so no other module spells a Redis key."""

    sources = PREFIX + "sources"
    subs = PREFIX + "subs"
    events = PREFIX + "events"
    unfanned = PREFIX + "events:unfanned"
    deliveries = PREFIX + "dlv:all"
    due = PREFIX + "dlv:due"
    dead = PREFIX + "dlv:dead"
    workers = PREFIX + "workers"
    # Every per-source and per-subscription index ever written to, so trimming reaches the
    # indexes of deleted sources and subscriptions too.
    indexes = PREFIX + "indexes"

    @staticmethod
    def source_events(source: str) -> str:
        return f"{PREFIX}events:src:{source}"

    @staticmethod
    def sub_deliveries(sub_id: str) -> str:
        return f"{PREFIX}dlv:sub:{sub_id}"

    @staticmethod
    def sub_dead(sub_id: str) -> str:
        return f"{PREFIX}dlv:dead:{sub_id}"

    @staticmethod
    def dead_letters(sub_id: str | None) -> str:
        """The dead-letter index of one subscription, or of all."""
        return Keys.sub_dead(sub_id) if sub_id else Keys.dead

    @staticmethod
    def paused(sub_id: str) -> str:
        return f"{PREFIX}dlv:paused:{sub_id}"

    @staticmethod
    def source(name: str) -> str:
        return f"{PREFIX}source:{name}"

    @staticmethod
    def sub(sub_id: str) -> str:
        return f"{PREFIX}sub:{sub_id}"

    @staticmethod
    def subs_for(source: str) -> str:
        return f"{PREFIX}subs:src:{source}"

    @staticmethod
    def event(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}"

    @staticmethod
    def event_body(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:body"

    @staticmethod
    def event_deliveries(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:dlv"

    @staticmethod
    def idempotency(source: str, key: str) -> str:
        return f"{PREFIX}idem:{source}:{key}"

    @staticmethod
    def delivery(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}"

    @staticmethod
    def attempts(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}:att"


# Metadata and body are two plain strings: a hash holding a body of more than 64 bytes
# leaves Redis's compact encoding and costs about 2 KB more per event.
# KEYS: source, idempotency, event, event body, events, events of source, unfanned, indexes
# ARGV: source rev, use idempotency ("1"/"0"), idempotency ttl, event id, received ms,
#       expire at ms, metadata JSON, body
INGEST_SCRIPT = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if rev ~= ARGV[1] then return {'stale', rev or ''} end
if ARGV[2] == '1' then
  local first = redis.call('GET', KEYS[2])
  if first then return {'duplicate', first} end
  redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[7], 'PXAT', ARGV[6])
redis.call('SET', KEYS[4], ARGV[8], 'PXAT', ARGV[6])
redis.call('ZADD', KEYS[5], 0, ARGV[4])
redis.call('ZADD', KEYS[6], 0, ARGV[4])
redis.call('SADD', KEYS[8], KEYS[6])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[4])
return {'accepted', ARGV[4]}
"""

# Records new deliveries of an event: at fan-out (only once: the event must still be in the
# unfanned index) and at replay (any time).
# KEYS: unfanned, event, event deliveries, due, all deliveries, event body, indexes, then
#       per delivery: its hash and its subscription's delivery index
# Returns 1, or 0 (fan-out done already / event gone), or -1 (a replay before fan-out).
# ARGV: event id, now ms, fan-out ("1"/"0"), expire at ms, then per delivery: id, due ms,
#       fields (JSON object of strings)
ADD_DELIVERIES_SCRIPT = """
local unfanned = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[3] == '1' then
  if not unfanned then return 0 end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
elseif unfanned then
  return -1
end
local n = 0
for i = 5, #ARGV, 3 do
  local dkey = KEYS[8 + 2 * n]
  local fields = cjson.decode(ARGV[i + 2])
  for k, v in pairs(fields) do redis.call('HSET', dkey, k, v) end
  redis.call('PEXPIREAT', dkey, ARGV[4])
  redis.call('RPUSH', KEYS[3], ARGV[i])
  redis.call('ZADD', KEYS[4], ARGV[i + 1], ARGV[i])
  redis.call('ZADD', KEYS[5], 0, ARGV[i])
  redis.call('ZADD', KEYS[9 + 2 * n], 0, ARGV[i])
  redis.call('SADD', KEYS[7], KEYS[9 + 2 * n])
  n = n + 1
end
-- The event lives as long as its newest delivery.
for _, key in ipairs({KEYS[2], KEYS[3], KEYS[6]}) do
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < tonumber(ARGV[4]) - tonumber(ARGV[2])) then
    redis.call('PEXPIREAT', key, ARGV[4])
  end
end
if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1
"""

# KEYS: delivery, due, subscription, paused deliveries of the subscription
# ARGV: delivery id, attempt number, now ms, lease until ms, ignore pause ("1"/"0")
CLAIM_SCRIPT = """
local d = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'lease_until', 'next_attempt_at')
if not d[1] then return 'missing' end
if d[1] == 'succeeded' or d[1] == 'dead' then return 'terminal' end
if tonumber(d[2]) ~= tonumber(ARGV[2]) - 1 then return 'stale' end
if d[1] == 'delivering' and tonumber(d[3] or '0') > tonumber(ARGV[3]) then return 'busy' end
if ARGV[5] ~= '1' and redis.call('HGET', KEYS[3], 'paused') == '1' then
  -- Parked, not dropped: resume puts it back in order of when it was due.
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZADD', KEYS[4], tonumber(d[4]) or tonumber(ARGV[3]), ARGV[1])
  return 'paused'
end
redis.call('HSET', KEYS[1], 'status', 'delivering', 'lease_until', ARGV[4], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 'ok'
"""

# KEYS: delivery, attempts, due, dead, subscription, dead of subscription, indexes
# ARGV: delivery id, attempt number, attempt JSON, status, due score ('' = none), now ms,
#       next attempt ms ('' = none), last status code, last error, disable reason ('' = keep),
#       dead letter ("1"; "0" for the relay's own test events, which are never replayed),
#       disable after failing ms ("0": this attempt does not count), its disable reason
# Returns {0} when another run recorded this attempt first, else {1, reason the
# subscription was disabled for by this attempt, or ''}.
RECORD_SCRIPT = """
local cur = redis.call('HMGET', KEYS[1], 'attempts', 'expires_at')
if not cur[1] or tonumber(cur[1]) ~= tonumber(ARGV[2]) - 1 then return {0} end
redis.call('RPUSH', KEYS[2], ARGV[3])
if cur[2] then redis.call('PEXPIREAT', KEYS[2], cur[2]) end
redis.call('HSET', KEYS[1], 'attempts', ARGV[2], 'status', ARGV[4], 'updated_at', ARGV[6],
  'next_attempt_at', ARGV[7], 'last_status_code', ARGV[8], 'last_error', ARGV[9],
  'lease_until', '0')
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'first_attempt_at', ARGV[6]) end
if ARGV[4] == 'succeeded' then
  redis.call('ZREM', KEYS[3], ARGV[1])
elseif ARGV[4] == 'dead' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  if ARGV[11] == '1' then
    redis.call('ZADD', KEYS[4], 0, ARGV[1])
    redis.call('ZADD', KEYS[6], 0, ARGV[1])
    redis.call('SADD', KEYS[7], KEYS[6])
  end
else
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
local disabled = ''
if redis.call('EXISTS', KEYS[5]) == 1 then
  local enabled = redis.call('HGET', KEYS[5], 'enabled') == '1'
  if ARGV[4] == 'succeeded' then
    redis.call('HDEL', KEYS[5], 'failing_since', 'last_failure_at')
  elseif ARGV[12] ~= '0' then
    -- Every attempt since the first failure failed: disable a subscription that has been
    -- failing for too long, as Svix does. A quiet gap as long as the limit starts the
    -- clock again: one failure now says nothing about one six days ago.
    local now, limit = tonumber(ARGV[6]), tonumber(ARGV[12])
    local f = redis.call('HMGET', KEYS[5], 'failing_since', 'last_failure_at')
    local since = tonumber(f[1])
    if not since or now - (tonumber(f[2]) or since) >= limit then since = now end
    redis.call('HSET', KEYS[5], 'failing_since', since, 'last_failure_at', now)
    if now - since >= limit and enabled then disabled = ARGV[13] end
  end
  if ARGV[10] ~= '' and enabled then disabled = ARGV[10] end
  if disabled ~= '' then
    redis.call('HSET', KEYS[5], 'enabled', '0', 'disabled_reason', disabled)
  end
end
return {1, disabled}
"""

# Puts a delivery back on the road (manual retry, dead-letter replay) with a fresh retry
# window: the policy counts attempts and age from now, while attempt numbers keep counting.
# Each reopen is a new generation, part of the job id, so its job is never mistaken for one
# queued before it.
# KEYS: delivery, due, dead, dead of its subscription
# ARGV: delivery id, now ms, only if dead ("1"/"0")
# Returns {attempts so far, generation}, or {-1} missing, {-2} not dead, {-3} in flight.
REOPEN_SCRIPT = """
local d = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'lease_until')
if not d[1] then return {-1} end
if ARGV[3] == '1' and d[1] ~= 'dead' then return {-2} end
if d[1] == 'delivering' and tonumber(d[3] or '0') > tonumber(ARGV[2]) then return {-3} end
redis.call('HSET', KEYS[1], 'status', 'pending', 'next_attempt_at', ARGV[2],
  'updated_at', ARGV[2], 'retry_base', d[2], 'retry_started_at', ARGV[2], 'lease_until', '0')
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return {tonumber(d[2]), gen}
"""

# KEYS: subscription, its paused deliveries, due
# ARGV: "1" to pause, "0" to resume
# Returns -1 for no such subscription, else the ids made due again, in due order.
PAUSE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'paused', ARGV[1])
if ARGV[1] == '1' then return {} end
local parked = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local ids = {}
for i = 1, #parked, 2 do
  redis.call('ZADD', KEYS[3], parked[i + 1], parked[i])
  ids[#ids + 1] = parked[i]
end
redis.call('DEL', KEYS[2])
return ids
"""

# Deletes a subscription. Deliveries parked by a pause become due again (they then die as
# SubscriptionDeleted, visible in the dead letters); only those are touched.
# KEYS: subscription, its paused deliveries, due, every subscription, then the source
#       indexes it is listed in
# ARGV: subscription id
DELETE_SUBSCRIPTION_SCRIPT = """
local parked = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #parked, 2 do redis.call('ZADD', KEYS[3], parked[i + 1], parked[i]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
for i = 5, #KEYS do redis.call('SREM', KEYS[i], ARGV[1]) end
return #parked / 2
"""

# Forgets per-source and per-subscription indexes that trimming emptied, unless a write
# filled them again in the meantime.
# KEYS: the index registry, then the candidate indexes
FORGET_EMPTY_INDEXES_SCRIPT = """
local forgotten = 0
for i = 2, #KEYS do
  if redis.call('ZCARD', KEYS[i]) == 0 then
    forgotten = forgotten + redis.call('SREM', KEYS[1], KEYS[i])
  end
end
return forgotten
"""
