-- Lanes: each subscription's deliveries wait in their own sorted set (by due time, then id,
-- which is creation order), and one ARQ job at a time drains a lane. The lane's state hash
-- says which job is armed; a lane with work and no armed job gets one here, so wake-ups
-- coalesce and none is lost between a job's last look and its end.
-- What an attempt's context reads of a delivery hash (relay.storage.deliveries.FIELDS, in
-- its order): claim_lane.lua returns them with each delivery it claims, fanout.lua with each
-- one it puts in flight for its caller.
local DELIVERY_FIELDS = {'event_id', 'subscription_id', 'mode', 'status', 'attempts',
  'created_at', 'updated_at', 'next_attempt_at', 'last_status_code', 'last_error',
  'retry_base', 'retry_started_at', 'first_attempt_at', 'gen', 'ordered', 'okey',
  'next_trigger'}

local function lane_key(prefix, sub_id, part)
  local key = prefix .. 'lane:' .. sub_id
  if part then key = key .. ':' .. part end
  return key
end

-- The lane has no job any more (it ended, or it was lost with its worker): no job, no holder,
-- nothing running.
local function release_lane(state_key)
  redis.call('HDEL', state_key, 'job', 'holder', 'running')
end

-- Attempts in flight whose lease ends by until_ms go back to the lane, due now: their
-- worker is gone (the lease ran out, or the worker's heartbeat stopped).
local function requeue_flight(lane, flight, until_ms, now_ms)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', flight, '-inf', until_ms)) do
    redis.call('ZREM', flight, id)
    redis.call('ZADD', lane, now_ms, id)
  end
end

-- The lane's hold and circuit breaker (relay.domain.breaker), all in its state hash.
local HOLD_FIELDS = {'hold_until', 'hold_reason', 'tripped', 'trips', 'bw', 'bo', 'bf', 'po', 'pf'}

-- Deliveries a released hold pulls forward at most (their retries fell due within it);
-- any past these go at their own time, which is no later than the hold would have ended.
local RELEASE_MAX = 1000

-- An operator's word (resume, a manual retry or replay, a successful test) ends the lane's
-- hold at once and closes its breaker with a fresh window; deliveries whose next attempt
-- fell within the hold (a Retry-After, a retry scheduled while it held) are due now.
local function release_hold(prefix, sub_id, now_ms)
  local state = lane_key(prefix, sub_id, 'state')
  local hold = redis.call('HGET', state, 'hold_until')
  redis.call('HDEL', state, unpack(HOLD_FIELDS))
  if not hold or tonumber(hold) <= tonumber(now_ms) then return end
  local lane = lane_key(prefix, sub_id)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', lane, '(' .. now_ms, hold, 'LIMIT', 0, RELEASE_MAX)) do
    redis.call('ZADD', lane, now_ms, id)
    local delivery_key = prefix .. 'dlv:' .. id
    -- An expired record is not written again (it would come back without a TTL).
    if redis.call('EXISTS', delivery_key) == 1 then
      redis.call('HSET', delivery_key, 'next_attempt_at', now_ms)
    end
  end
end

-- Arms the lane's job to run at when_ms (sooner if it was armed for later). The job's ARQ
-- record is written as ArqRedis.enqueue_job writes it (serialized by the relay's JSON
-- serializer); each arming gets a new job id, so a job that is just finishing never
-- swallows a new wake-up.
local function arm_lane(prefix, queue_key, job_prefix, sub_id, when_ms, now_ms)
  redis.call('SADD', prefix .. 'lanes', sub_id)
  local state = lane_key(prefix, sub_id, 'state')
  local job = redis.call('HMGET', state, 'job', 'running')
  local current = job[1]
  if current then
    -- A running job takes new work itself; pulling its entry back to the queue's head
    -- would hide other lanes' jobs from the workers again (see start_lane.lua).
    if current ~= job[2] then redis.call('ZADD', queue_key, 'XX', 'LT', when_ms, current) end
    return current
  end
  local job_id = 'lane:' .. sub_id .. ':' .. redis.call('HINCRBY', state, 'seq', 1)
  local payload = '{"t":null,"f":"lane","a":["' .. sub_id .. '"],"k":{},"et":' .. now_ms .. '}'
  local ttl = math.max(tonumber(when_ms) - tonumber(now_ms), 0) + 86400000
  redis.call('SET', job_prefix .. job_id, payload, 'PX', ttl)
  redis.call('ZADD', queue_key, when_ms, job_id)
  redis.call('HSET', state, 'job', job_id)
  redis.call('HDEL', state, 'holder')
  return job_id
end

-- Puts a delivery in its lane, due at due_ms. An ordered (FIFO) delivery whose key already
-- has a head waits behind it instead. Returns true when it is in the lane itself.
local function enter_lane(prefix, sub_id, delivery_id, due_ms, ordered, okey)
  if ordered == '1' then
    local heads = lane_key(prefix, sub_id, 'heads')
    local head = redis.call('HGET', heads, okey)
    if head and head ~= delivery_id then
      redis.call('RPUSH', lane_key(prefix, sub_id, 'q:' .. okey), delivery_id)
      return false
    end
    redis.call('HSET', heads, okey, delivery_id)
  end
  redis.call('ZADD', lane_key(prefix, sub_id), due_ms, delivery_id)
  return true
end

-- An ordered delivery is done (succeeded or dead): the next one with its key, if any, is
-- the new head and due now.
local function advance_fifo(prefix, sub_id, delivery_id, okey, now_ms)
  local heads = lane_key(prefix, sub_id, 'heads')
  if redis.call('HGET', heads, okey) ~= delivery_id then return end
  local nxt = redis.call('LPOP', lane_key(prefix, sub_id, 'q:' .. okey))
  if nxt then
    redis.call('HSET', heads, okey, nxt)
    redis.call('ZADD', lane_key(prefix, sub_id), now_ms, nxt)
  else
    redis.call('HDEL', heads, okey)
  end
end
