-- Puts a delivery back on the road (manual retry, dead-letter replay) with a fresh retry
-- window: the policy counts attempts and age from now, while attempt numbers keep counting.
-- It is due now in its lane (behind the head of its ordering key, if it has one), its next
-- attempt is marked manual, any hold of the lane ends (the operator's word wins over the
-- breaker) and the lane is armed at once.
-- Returns {attempts so far, generation}, or {-1} missing, {-2} not dead, {-3} in flight.
-- include: lib/lanes.lua
local delivery_key, dead_key, sub_dead_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, job_prefix, sub_id, delivery_id, now_ms, only_dead = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local d = redis.call('HMGET', delivery_key, 'status', 'attempts', 'lease_until', 'ordered', 'okey')
local status, attempts, lease_until = d[1], d[2] or '0', d[3]
if not status then return {-1} end
if only_dead == '1' and status ~= 'dead' then return {-2} end
if status == 'delivering' and tonumber(lease_until or '0') > tonumber(now_ms) then return {-3} end
redis.call('HSET', delivery_key, 'status', 'pending', 'next_attempt_at', now_ms,
  'updated_at', now_ms, 'retry_base', attempts, 'retry_started_at', now_ms, 'lease_until', '0',
  'next_trigger', 'manual')
local gen = redis.call('HINCRBY', delivery_key, 'gen', 1)
redis.call('ZREM', dead_key, delivery_id)
redis.call('ZREM', sub_dead_key, delivery_id)
redis.call('ZREM', prefix .. 'lane:' .. sub_id .. ':flight', delivery_id)
release_hold(prefix, sub_id, now_ms)
enter_lane(prefix, sub_id, delivery_id, now_ms, d[4] or '0', d[5] or '')
-- Armed even when it waits behind its FIFO head: a job armed for the hold's end is due now.
arm_lane(prefix, queue_key, job_prefix, sub_id, now_ms, now_ms)
return {tonumber(attempts), gen}
