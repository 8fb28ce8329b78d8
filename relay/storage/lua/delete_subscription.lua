-- Deletes a subscription. Its lane is armed, so deliveries still waiting in it are closed
-- as SubscriptionDeleted (visible in the dead letters) without a request.
-- KEYS after the fixed ones: the source indexes that list it.
-- include: lib/lanes.lua
local sub_key, subs_key, failing_key, subs_rev_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, job_prefix, sub_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

redis.call('DEL', sub_key, failing_key)
redis.call('SREM', subs_key, sub_id)
for i = 6, #KEYS do redis.call('SREM', KEYS[i], sub_id) end
redis.call('INCR', subs_rev_key)
if redis.call('SISMEMBER', prefix .. 'lanes', sub_id) == 1 then
  -- Its lane job closes what waits, then drops the lane's state (yield_lane).
  arm_lane(prefix, queue_key, job_prefix, sub_id, now_ms, now_ms)
else
  redis.call('DEL', lane_key(prefix, sub_id, 'state'), lane_key(prefix, sub_id, 'heads'))
end
return 1
