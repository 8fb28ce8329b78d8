-- A subscription test succeeded: the receiver is back, so its lane's hold ends and its
-- breaker closes at once; a lane with deliveries waiting is armed to go now.
-- Returns 1 when the lane had work and was armed, else 0.
-- include: lib/lanes.lua
local lane_key, state_key, queue_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, job_prefix, sub_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

release_hold(prefix, sub_id, now_ms)
if redis.call('ZCARD', lane_key) == 0 then return 0 end
arm_lane(prefix, queue_key, job_prefix, sub_id, now_ms, now_ms)
return 1
