-- Pauses or resumes a subscription. Resuming makes its parked deliveries due again.
-- Returns -1 for no such subscription, else the ids made due again, in due order.
local sub_key, paused_key, due_key = KEYS[1], KEYS[2], KEYS[3]
local pause = ARGV[1]

if redis.call('EXISTS', sub_key) == 0 then return -1 end
redis.call('HSET', sub_key, 'paused', pause)
if pause == '1' then return {} end
local parked = redis.call('ZRANGE', paused_key, 0, -1, 'WITHSCORES')
local ids = {}
for i = 1, #parked, 2 do
  redis.call('ZADD', due_key, parked[i + 1], parked[i])
  ids[#ids + 1] = parked[i]
end
redis.call('DEL', paused_key)
return ids
