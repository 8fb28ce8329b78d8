-- Upgrade from the layout before lanes: moves up to `limit` deliveries from an old index (the
-- global due index, or a paused subscription's parked set) into their subscription's lane,
-- keeping their due times (a claim's lease end, for one that was in flight). Deliveries
-- that are done, or whose record expired, are dropped from the old index.
-- Returns {moved, left in the old index}.
local old_key = KEYS[1]
local prefix, limit = ARGV[1], ARGV[2]

local entries = redis.call('ZRANGE', old_key, 0, tonumber(limit) - 1, 'WITHSCORES')
local moved = 0
for i = 1, #entries, 2 do
  local id, due = entries[i], entries[i + 1]
  local d = redis.call('HMGET', prefix .. 'dlv:' .. id, 'status', 'subscription_id')
  if d[1] == 'pending' or d[1] == 'failed' or d[1] == 'delivering' then
    redis.call('ZADD', prefix .. 'lane:' .. d[2], due, id)
    redis.call('SADD', prefix .. 'lanes', d[2])
    moved = moved + 1
  end
  redis.call('ZREM', old_key, id)
end
return {moved, redis.call('ZCARD', old_key)}
