-- Creates the deliveries of a batch of events in one step: at fan-out (each event only
-- once: it must still be in the unfanned index, which it leaves here) or at replay (any
-- time after fan-out). Reliable deliveries enter their subscription's lane, which is armed;
-- best-effort ones the caller attempts itself are put in flight under its lease (a lane job
-- takes them over only if the caller dies first).
-- A fan-out to many subscriptions comes in chunks (relay.delivery.fanout), one call each, so
-- no call holds Redis for long. The subscriptions are planned in id order and the event's
-- cursor (evt:{id}:fanout) names the last one a committed chunk covered: a chunk commits only
-- if the cursor is where it starts (its 'after'), and moves it on in the same step, so a
-- fan-out resumed after a crash, or two processes on the same event, can neither skip nor
-- repeat a subscription. The event leaves the unfanned index with its last chunk only.
-- ARGV after the fixed ones, per event: 'E', event id, number of deliveries, number of
-- subscriptions its filters skipped, after (the cursor it starts from; '' for the first
-- chunk), upto (the cursor it leaves; '' for the last chunk); then per delivery: id,
-- subscription id, mode, inline ('1': in flight for the caller), due or lease ms, ordered
-- ('1'/'0'), ordering key; then per skipped subscription: its id and the condition that
-- failed (kept in evt:{id}:skipped).
-- Returns {'stale', current rev} when fan-out planned with out-of-date subscriptions, else
-- {'ok', per event: 1 added, 0 fanned out already or gone, -1 a replay before fan-out, 2 its
-- cursor is not at 'after' (another process moved it: read it and plan again), then
-- per delivery put in flight for the caller: what its attempt needs, as claim_lane.lua hands
-- out a claimed one (id, DELIVERY_FIELDS, event metadata, body) and its subscription's
-- config, enabled, disabled reason, paused and failing clock}: the caller attempts it at once
-- without reading it back.
-- include: lib/lanes.lua
local unfanned_key, all_deliveries_key, indexes_key, subs_rev_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, job_prefix, now_ms, expire_at_ms, planned_rev, fan_out = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local rev = redis.call('GET', subs_rev_key) or '0'
if fan_out == '1' and rev ~= planned_rev then return {'stale', rev} end
local results = {'ok'}
local inline_out = {}
local i = 7
while i <= #ARGV do
  local event_id, count, skipped = ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local after, upto = ARGV[i + 4], ARGV[i + 5]
  i = i + 6
  local event_key = prefix .. 'evt:' .. event_id
  local cursor_key = event_key .. ':fanout'
  local unfanned = redis.call('ZSCORE', unfanned_key, event_id)
  local verdict = 1
  if fan_out == '1' then
    if not unfanned then
      verdict = 0
    elseif (redis.call('GET', cursor_key) or '') ~= after then
      verdict = 2
    end
  elseif redis.call('EXISTS', event_key) == 0 then
    verdict = 0
  elseif unfanned then
    verdict = -1
  end
  if verdict == 1 then
    local event_deliveries_key = event_key .. ':dlv'
    -- The event's delivery ids, each followed by a space: a string costs ~100 bytes less per
    -- event than a list. Events stored before kept a list, which is appended to as before.
    local listed = redis.call('TYPE', event_deliveries_key).ok == 'list'
    for d = 0, count - 1 do
      local j = i + 7 * d
      local delivery_id, sub_id, mode, inline, due_ms, ordered, okey = ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4], ARGV[j + 5], ARGV[j + 6]
      local delivery_key = prefix .. 'dlv:' .. delivery_id
      -- Only what differs from a new delivery's defaults is written (no retry base,
      -- updated_at = created_at, mode reliable; relay.storage.deliveries reads them so):
      -- each field is ~16 bytes of every pending delivery. attempts stays: a worker of the
      -- version before checks it when it records an attempt, during a rolling upgrade.
      redis.call('HSET', delivery_key, 'event_id', event_id, 'subscription_id', sub_id,
        'status', 'pending', 'attempts', '0', 'created_at', now_ms, 'next_attempt_at', due_ms,
        'expires_at', expire_at_ms)
      if mode ~= 'reliable' then redis.call('HSET', delivery_key, 'mode', mode) end
      if ordered == '1' then redis.call('HSET', delivery_key, 'ordered', '1', 'okey', okey) end
      redis.call('PEXPIREAT', delivery_key, expire_at_ms)
      if listed then
        redis.call('RPUSH', event_deliveries_key, delivery_id)
      else
        redis.call('APPEND', event_deliveries_key, delivery_id .. ' ')
      end
      redis.call('ZADD', all_deliveries_key, 0, delivery_id)
      local sub_deliveries_key = prefix .. 'dlv:sub:' .. sub_id
      redis.call('ZADD', sub_deliveries_key, 0, delivery_id)
      redis.call('SADD', indexes_key, sub_deliveries_key)
      if inline == '1' then
        redis.call('HSET', delivery_key, 'status', 'delivering', 'lease_until', due_ms)
        redis.call('ZADD', lane_key(prefix, sub_id, 'flight'), due_ms, delivery_id)
        redis.call('SADD', prefix .. 'lanes', sub_id)
        inline_out[#inline_out + 1] = {delivery_id, sub_id, event_key}
      elseif enter_lane(prefix, sub_id, delivery_id, due_ms, ordered, okey) then
        arm_lane(prefix, queue_key, job_prefix, sub_id, due_ms, now_ms)
      end
    end
    local keys = {event_key, event_deliveries_key, event_key .. ':body'}
    if skipped > 0 then
      local skipped_key = event_key .. ':skipped'
      keys[4] = skipped_key
      for k = 0, skipped - 1 do
        local j = i + 7 * count + 2 * k
        redis.call('HSET', skipped_key, ARGV[j], ARGV[j + 1])
      end
    end
    -- The event lives as long as its newest delivery.
    for _, key in ipairs(keys) do
      local ttl = redis.call('PTTL', key)
      if ttl == -1 or (ttl >= 0 and ttl < tonumber(expire_at_ms) - tonumber(now_ms)) then
        redis.call('PEXPIREAT', key, expire_at_ms)
      end
    end
    if fan_out == '1' and upto ~= '' then
      redis.call('SET', cursor_key, upto, 'PXAT', expire_at_ms)
    elseif fan_out == '1' then
      redis.call('DEL', cursor_key)
      redis.call('ZREM', unfanned_key, event_id)
    end
  end
  i = i + 7 * count + 2 * skipped
  results[#results + 1] = verdict
end
for _, d in ipairs(inline_out) do
  local delivery_id, sub_id, event_key = d[1], d[2], d[3]
  local sub_key = prefix .. 'sub:' .. sub_id
  results[#results + 1] = delivery_id
  for _, v in ipairs(redis.call('HMGET', prefix .. 'dlv:' .. delivery_id, unpack(DELIVERY_FIELDS))) do
    results[#results + 1] = v or ''
  end
  results[#results + 1] = redis.call('GET', event_key) or ''
  results[#results + 1] = redis.call('GET', event_key .. ':body') or ''
  for _, v in ipairs(redis.call('HMGET', sub_key, 'config', 'enabled', 'disabled_reason', 'paused')) do
    results[#results + 1] = v or ''
  end
  results[#results + 1] = redis.call('GET', sub_key .. ':failing') or ''
end
return results
