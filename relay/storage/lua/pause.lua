-- Pauses or resumes a subscription. A paused lane hands out nothing (its deliveries wait in
-- it, in order); resuming ends any hold of the lane and arms it, so they go out at once.
-- Returns 0 for no such subscription, else 1.
-- include: lib/lanes.lua
local sub_key, queue_key = KEYS[1], KEYS[2]
local prefix, job_prefix, sub_id, pause, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('EXISTS', sub_key) == 0 then return 0 end
redis.call('HSET', sub_key, 'paused', pause)
if pause == '0' then
  release_hold(prefix, sub_id, now_ms)
  arm_lane(prefix, queue_key, job_prefix, sub_id, now_ms, now_ms)
end
return 1
