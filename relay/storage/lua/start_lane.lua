-- A lane job has started: its ARQ queue entry moves past the job's in-progress lease. ARQ
-- leaves a running job in its queue, at its original (early) score, until it finishes, and
-- a worker reads only the first few due entries per poll: a handful of lanes whose
-- requests hang for seconds would fill those first places and hide every other lane's job
-- (a healthy subscriber's deliveries waited 11.7 s, p50, behind six hanging ones). At the
-- lease's end the entry is due again, just as ARQ retries a job whose worker died.
-- Returns 1, or 0 when another job was armed for the lane meanwhile.
local state_key, queue_key = KEYS[1], KEYS[2]
local job_id, until_ms = ARGV[1], ARGV[2]

if redis.call('HGET', state_key, 'job') ~= job_id then return 0 end
redis.call('HSET', state_key, 'running', job_id)
redis.call('ZADD', queue_key, 'XX', 'GT', until_ms, job_id)
return 1
