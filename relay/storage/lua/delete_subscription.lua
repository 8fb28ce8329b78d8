-- Deletes a subscription. Deliveries parked by a pause become due again (they then die as
-- SubscriptionDeleted, visible in the dead letters); only those are touched.
-- KEYS after the fixed ones: the source indexes that list it.
local sub_key, paused_key, due_key, subs_key, failing_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sub_id = ARGV[1]

local parked = redis.call('ZRANGE', paused_key, 0, -1, 'WITHSCORES')
for i = 1, #parked, 2 do redis.call('ZADD', due_key, parked[i + 1], parked[i]) end
redis.call('DEL', sub_key, paused_key, failing_key)
redis.call('SREM', subs_key, sub_id)
for i = 6, #KEYS do redis.call('SREM', KEYS[i], sub_id) end
return #parked / 2
