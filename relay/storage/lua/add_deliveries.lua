-- Records new deliveries of an event: at fan-out (only once: the event must still be in the
-- unfanned index, which it leaves here) and at replay (any time after fan-out).
-- KEYS after the fixed ones: per delivery, its hash and its subscription's delivery index.
-- ARGV after the fixed ones: per delivery, its id, due ms and fields (a JSON object).
-- Returns 1, 0 (fan-out done already, or the event is gone) or -1 (a replay before fan-out).
local unfanned_key, event_key, event_deliveries_key, due_key, all_deliveries_key, body_key, indexes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local event_id, now_ms, fan_out, expire_at_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local unfanned = redis.call('ZSCORE', unfanned_key, event_id)
if fan_out == '1' then
  if not unfanned then return 0 end
elseif redis.call('EXISTS', event_key) == 0 then
  return 0
elseif unfanned then
  return -1
end
local n = 0
for i = 5, #ARGV, 3 do
  local delivery_id, due_ms, fields = ARGV[i], ARGV[i + 1], cjson.decode(ARGV[i + 2])
  local delivery_key, sub_deliveries_key = KEYS[8 + 2 * n], KEYS[9 + 2 * n]
  for k, v in pairs(fields) do redis.call('HSET', delivery_key, k, v) end
  redis.call('PEXPIREAT', delivery_key, expire_at_ms)
  redis.call('RPUSH', event_deliveries_key, delivery_id)
  redis.call('ZADD', due_key, due_ms, delivery_id)
  redis.call('ZADD', all_deliveries_key, 0, delivery_id)
  redis.call('ZADD', sub_deliveries_key, 0, delivery_id)
  redis.call('SADD', indexes_key, sub_deliveries_key)
  n = n + 1
end
-- The event lives as long as its newest delivery.
for _, key in ipairs({event_key, event_deliveries_key, body_key}) do
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < tonumber(expire_at_ms) - tonumber(now_ms)) then
    redis.call('PEXPIREAT', key, expire_at_ms)
  end
end
if fan_out == '1' then redis.call('ZREM', unfanned_key, event_id) end
return 1
