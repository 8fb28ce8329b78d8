-- Takes one attempt of a delivery (pending or failed -> delivering), unless it is done, taken
-- by a live lease, out of date, or its subscription is paused: then it is parked, not
-- dropped, and resume puts it back in the order it fell due.
-- Returns 'ok', 'missing', 'terminal', 'stale', 'busy' or 'paused'.
local delivery_key, due_key, sub_key, paused_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delivery_id, attempt, now_ms, lease_until_ms, ignore_pause = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local d = redis.call('HMGET', delivery_key, 'status', 'attempts', 'lease_until', 'next_attempt_at')
local status, attempts, lease_until, next_attempt_at = d[1], d[2], d[3], d[4]
if not status then return 'missing' end
if status == 'succeeded' or status == 'dead' then return 'terminal' end
if tonumber(attempts) ~= tonumber(attempt) - 1 then return 'stale' end
if status == 'delivering' and tonumber(lease_until or '0') > tonumber(now_ms) then return 'busy' end
if ignore_pause ~= '1' and redis.call('HGET', sub_key, 'paused') == '1' then
  redis.call('ZREM', due_key, delivery_id)
  redis.call('ZADD', paused_key, tonumber(next_attempt_at) or tonumber(now_ms), delivery_id)
  return 'paused'
end
redis.call('HSET', delivery_key, 'status', 'delivering', 'lease_until', lease_until_ms, 'updated_at', now_ms)
redis.call('ZADD', due_key, lease_until_ms, delivery_id)
return 'ok'
