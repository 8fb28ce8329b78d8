-- Reconciliation: arms each lane that has work and no live job (its job was lost with a
-- crashed worker or a Redis restart, or it never had one: a best-effort attempt whose API
-- process died). A lane whose armed job still exists, or that is paused, is left alone,
-- unless the worker holding it has not beaten since holder_cutoff_ms (0: never): then its
-- job is withdrawn from ARQ, its attempts in flight go back to the lane, and the lane gets
-- a fresh job id at once, instead of waiting for ARQ's in-progress key to expire.
-- ARGV after the fixed ones: subscription ids.
-- Returns {ids of the lanes armed, ids of the lanes taken from a dead worker}.
-- include: lib/lanes.lua
local queue_key, workers_key = KEYS[1], KEYS[2]
local prefix, job_prefix, in_progress_prefix, now_ms, holder_cutoff_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local armed, taken = {}, {}
for i = 6, #ARGV do
  local sub_id = ARGV[i]
  local state_key = prefix .. 'lane:' .. sub_id .. ':state'
  local state = redis.call('HMGET', state_key, 'job', 'running', 'holder')
  local job, running, holder = state[1], state[2], state[3]
  if job and redis.call('EXISTS', job_prefix .. job, in_progress_prefix .. job) == 0 then
    release_lane(state_key)
    job = nil
  elseif job and holder and tonumber(redis.call('ZSCORE', workers_key, holder) or '0') < tonumber(holder_cutoff_ms) then
    redis.call('DEL', job_prefix .. job, in_progress_prefix .. job)
    redis.call('ZREM', queue_key, job)
    requeue_flight(prefix .. 'lane:' .. sub_id, prefix .. 'lane:' .. sub_id .. ':flight', '+inf', now_ms)
    release_lane(state_key)
    job = nil
    taken[#taken + 1] = sub_id
  elseif job and job == running and redis.call('EXISTS', in_progress_prefix .. job) == 0 then
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
return {armed, taken}
