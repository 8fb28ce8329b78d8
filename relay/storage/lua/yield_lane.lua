-- A lane job asks whether to keep draining. It goes on while work is due now (and its time
-- budget lasts); otherwise the lane is re-armed for its next due time (a new job id) or,
-- with nothing left, goes idle. Decided in one step with arming, so a delivery that enters
-- the lane while the job winds down is never left without a job.
-- Returns {'more'}, {'rearmed', when}, {'idle'} or {'not_owner'} (another job was armed
-- for this lane meanwhile: this one stops).
-- include: lib/lanes.lua
local lane_key, flight_key, state_key, heads_key, sub_key, queue_key, lanes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix, job_prefix, sub_id, job_id, now_ms, exhausted = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local state = redis.call('HMGET', state_key, 'job', 'hold_until')
if state[1] ~= job_id then return {'not_owner'} end
local waiting = redis.call('ZRANGE', lane_key, 0, 0, 'WITHSCORES')[2]
local lease = redis.call('ZRANGE', flight_key, 0, 0, 'WITHSCORES')[2]
if not waiting and not lease then
  if redis.call('EXISTS', sub_key) == 0 then
    -- Deleted, and its last deliveries are closed: nothing will arm this lane again.
    redis.call('DEL', state_key, heads_key)
    redis.call('SREM', lanes_key, sub_id)
    return {'idle'}
  end
  redis.call('HDEL', state_key, 'job')
  if redis.call('HLEN', heads_key) == 0 then redis.call('SREM', lanes_key, sub_id) end
  return {'idle'}
end
local sub = redis.call('HMGET', sub_key, 'enabled', 'paused')
if sub[1] == '1' and sub[2] == '1' then
  -- Paused: resume arms the lane again.
  redis.call('HDEL', state_key, 'job')
  return {'idle'}
end
local when = tonumber(waiting or lease)
if waiting and lease then when = math.min(tonumber(waiting), tonumber(lease)) end
if sub[1] == '1' then when = math.max(when, tonumber(state[2] or '0')) end
if exhausted ~= '1' and when <= tonumber(now_ms) then return {'more'} end
redis.call('HDEL', state_key, 'job')
arm_lane(prefix, queue_key, job_prefix, sub_id, math.max(when, tonumber(now_ms)), now_ms)
return {'rearmed', tostring(when)}
