-- A lane job that handed its lane to a new job (its time was up while attempts were in
-- flight) has seen those attempts end: what they put back in the lane (a retry, the next
-- delivery of a FIFO key) must not wait for the new job's later due time. Arms the lane for
-- its earliest waiting delivery, not before a hold ends and not while paused.
-- Returns 1 when armed, else 0.
-- include: lib/lanes.lua
local lane_key, state_key, sub_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, job_prefix, sub_id, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local waiting = redis.call('ZRANGE', lane_key, 0, 0, 'WITHSCORES')[2]
if not waiting then return 0 end
local sub = redis.call('HMGET', sub_key, 'enabled', 'paused')
local when = tonumber(waiting)
if sub[1] == '1' then
  -- Paused: resume arms the lane.
  if sub[2] == '1' then return 0 end
  when = math.max(when, tonumber(redis.call('HGET', state_key, 'hold_until') or '0'))
end
arm_lane(prefix, queue_key, job_prefix, sub_id, math.max(when, tonumber(now_ms)), now_ms)
return 1
