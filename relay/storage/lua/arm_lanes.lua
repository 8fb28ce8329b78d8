-- Reconciliation: arms each lane that has work and no live job (its job was lost with a
-- crashed worker or a Redis restart, or it never had one: a best-effort attempt whose API
-- process died). A lane whose armed job still exists, or that is paused, is left alone.
-- ARGV after the fixed ones: subscription ids.
-- Returns the ids of the lanes armed.
-- include: lib/lanes.lua
local queue_key = KEYS[1]
local prefix, job_prefix, in_progress_prefix, now_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local armed = {}
for i = 5, #ARGV do
  local sub_id = ARGV[i]
  local state_key = prefix .. 'lane:' .. sub_id .. ':state'
  local state = redis.call('HMGET', state_key, 'job', 'running')
  local job = state[1]
  if job and redis.call('EXISTS', job_prefix .. job, in_progress_prefix .. job) == 0 then
    redis.call('HDEL', state_key, 'job')
    job = nil
  elseif job and job == state[2] and redis.call('EXISTS', in_progress_prefix .. job) == 0 then
    -- It started, and nobody runs it now (its worker died and its in-progress mark is
    -- gone), yet start_lane moved its queue entry to its lease's end: due again now.
    redis.call('ZADD', queue_key, 'XX', now_ms, job)
    armed[#armed + 1] = sub_id
  end
  -- A paused lane waits for resume, which arms it.
  local sub = redis.call('HMGET', prefix .. 'sub:' .. sub_id, 'enabled', 'paused')
  if not job and not (sub[1] == '1' and sub[2] == '1') then
    local waiting = redis.call('ZRANGE', prefix .. 'lane:' .. sub_id, 0, 0, 'WITHSCORES')[2]
    local lease = redis.call('ZRANGE', prefix .. 'lane:' .. sub_id .. ':flight', 0, 0, 'WITHSCORES')[2]
    -- Attempts in flight under a live lease (a best-effort attempt the API is making) need
    -- no job yet: if their process dies, a later run finds the lease expired.
    if waiting or (lease and tonumber(lease) <= tonumber(now_ms)) then
      local when = math.min(tonumber(waiting or lease), tonumber(lease or waiting))
      arm_lane(prefix, queue_key, job_prefix, sub_id, math.max(when, tonumber(now_ms)), now_ms)
      armed[#armed + 1] = sub_id
    elseif not lease and redis.call('HLEN', prefix .. 'lane:' .. sub_id .. ':heads') == 0 then
      redis.call('SREM', prefix .. 'lanes', sub_id)
    end
  end
end
return armed
