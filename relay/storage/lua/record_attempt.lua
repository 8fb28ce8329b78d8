-- Appends an attempt and moves the delivery to its outcome (succeeded, failed: back in its
-- lane with its next due time, or dead), in one step with the lane's step as
-- relay.domain.breaker decided it (the outcome counted in the breaker's window, a breaker
-- transition, a hold on the whole lane), the subscription's failing clock and,
-- when the relay's rules say so (relay.domain.failing), disabling the subscription.
-- With ops (relay.storage.ops.OpsContext as JSON; '' for none), a delivery that dies and a
-- subscription this attempt disables are reported as operational events (lib/ops.lua).
-- Returns {0} when another run recorded this attempt first, else {1, the reason this attempt
-- disabled the subscription for, or '', then the ids of the operational events written}.
-- include: lib/subscription_state.lua
-- include: lib/lanes.lua
-- include: lib/ops.lua
local delivery_key, attempts_key, lane_key, flight_key, state_key, dead_key, sub_key, sub_dead_key, indexes_key, failing_key, subs_rev_key, stats_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local prefix, sub_id, delivery_id, number, attempt_json, status, now_ms, next_attempt_at, status_code, error, dead_letter, disable_reason, failing, failing_seen, failing_since, failing_ttl_ms, failing_disable, hold_until, stats_ttl_ms, ops, hold_reason, counted, bucket, transition, trips = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16], ARGV[17], ARGV[18], ARGV[19], ARGV[20], ARGV[21], ARGV[22], ARGV[23], ARGV[24], ARGV[25]

local report = ops ~= '' and cjson.decode(ops) or nil
local emitted = {}
local cur = redis.call('HMGET', delivery_key, 'attempts', 'expires_at', 'ordered', 'okey', 'event_id')
-- A new delivery has no attempts field (fanout.lua writes only what differs from defaults).
if not cur[5] or tonumber(cur[1] or '0') ~= tonumber(number) - 1 then return {0} end
redis.call('RPUSH', attempts_key, attempt_json)
if cur[2] then redis.call('PEXPIREAT', attempts_key, cur[2]) end
-- Counted here, past the check above, so an attempt recorded twice is counted once.
redis.call('HINCRBY', stats_key, status, 1)
redis.call('PEXPIRE', stats_key, stats_ttl_ms)
redis.call('HSET', delivery_key, 'attempts', number, 'status', status, 'updated_at', now_ms,
  'next_attempt_at', next_attempt_at, 'last_status_code', status_code, 'last_error', error,
  'lease_until', '0', 'next_trigger', '')
if number == '1' then redis.call('HSET', delivery_key, 'first_attempt_at', now_ms) end
redis.call('ZREM', flight_key, delivery_id)
if status == 'failed' then
  redis.call('ZADD', lane_key, next_attempt_at, delivery_id)
else
  if status == 'dead' and dead_letter == '1' then
    redis.call('ZADD', dead_key, 0, delivery_id)
    redis.call('ZADD', sub_dead_key, 0, delivery_id)
    redis.call('SADD', indexes_key, sub_dead_key)
    if report then
      emitted[#emitted + 1] = emit_ops_event(prefix, report, 1, {
        subscription_id = sub_id, delivery_id = delivery_id, event_id = cur[5],
        attempts = tonumber(number), last_status_code = json_or_null(tonumber(status_code)),
        last_error = json_or_null(error)})
    end
  end
  if cur[3] == '1' then advance_fifo(prefix, sub_id, delivery_id, cur[4] or '', now_ms) end
end
if counted ~= '' then
  -- The breaker's window: this bucket's counts, and the bucket before (relay.domain.breaker).
  local b = redis.call('HMGET', state_key, 'bw', 'bo', 'bf')
  local at, cur = tonumber(bucket), tonumber(b[1] or '-1')
  if cur < at then
    if cur == at - 1 then
      redis.call('HSET', state_key, 'po', b[2] or '0', 'pf', b[3] or '0')
    else
      redis.call('HSET', state_key, 'po', '0', 'pf', '0')
    end
    redis.call('HSET', state_key, 'bw', bucket, 'bo', '0', 'bf', '0')
  end
  redis.call('HINCRBY', state_key, counted == 'ok' and 'bo' or 'bf', 1)
end
if transition == 'close' then
  -- Closed by a probe that succeeded: the window starts afresh.
  redis.call('HDEL', state_key, unpack(HOLD_FIELDS))
elseif transition == 'open' then
  redis.call('HSET', state_key, 'tripped', '1', 'trips', trips)
end
if hold_until ~= '' and tonumber(hold_until) > tonumber(redis.call('HGET', state_key, 'hold_until') or '0') then
  redis.call('HSET', state_key, 'hold_until', hold_until, 'hold_reason', hold_reason)
end
if redis.call('EXISTS', sub_key) == 0 then return {1, '', unpack(emitted)} end
-- failing: 'reset' (a success), 'count' (a failure that reached the subscriber) or ''.
-- disable_reason (a 410) disables at once; failing_disable is the failing-too-long rule's
-- reason, taken on the clock as it was read before the attempt: if a success moved the
-- clock since, this failure only starts it again.
local reason = disable_reason
if failing == 'reset' then
  redis.call('DEL', failing_key)
elseif failing == 'count' then
  local clock = redis.call('GET', failing_key) or ''
  if reason == '' and clock == failing_seen then reason = failing_disable end
  if clock == '' then clock = failing_since end
  redis.call('SET', failing_key, clock, 'PX', failing_ttl_ms)
end
if reason ~= '' and disable_subscription(sub_key, subs_rev_key, reason) then
  if report then
    emitted[#emitted + 1] = emit_ops_event(prefix, report, 2, {
      subscription_id = sub_id, reason = reason, delivery_id = delivery_id, event_id = cur[5]})
  end
  return {1, reason, unpack(emitted)}
end
return {1, '', unpack(emitted)}
