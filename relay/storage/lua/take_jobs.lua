-- Takes due ARQ jobs for one worker, several in one step: for each id, what arq 0.28's
-- Worker.start_jobs checks and writes one job at a time (four round trips each: WATCH the
-- in-progress key, EXISTS, ZSCORE, MULTI/PSETEX/EXEC), so a worker starting a thousand
-- one-delivery lanes spends no four thousand round trips on it. A job is taken when it is
-- still in the queue, due, and not in progress anywhere; its in-progress key is then set
-- for timeout_ms, as arq sets it, and its queue entry moves to the end of that time, as
-- start_lane.lua moves it once the job runs: until then the next polls would read it again
-- at the head of the queue, in place of the jobs behind it. If the worker dies, the entry is
-- due again when the in-progress key expires, as arq would retry the job.
-- ARGV after the fixed ones: job ids.
-- Returns {job id, queue score, ...} of the jobs taken.
local queue_key = KEYS[1]
local in_progress_prefix, now_ms, timeout_ms = ARGV[1], ARGV[2], ARGV[3]

local now = tonumber(now_ms)
local taken = {}
for i = 4, #ARGV do
  local job_id = ARGV[i]
  local score = redis.call('ZSCORE', queue_key, job_id)
  if score and tonumber(score) <= now
      and redis.call('EXISTS', in_progress_prefix .. job_id) == 0 then
    redis.call('SET', in_progress_prefix .. job_id, '1', 'PX', timeout_ms)
    redis.call('ZADD', queue_key, 'XX', 'GT', now + tonumber(timeout_ms), job_id)
    taken[#taken + 1] = job_id
    taken[#taken + 1] = score
  end
end
return taken
