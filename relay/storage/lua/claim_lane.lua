-- Takes the next due deliveries of a lane for one worker (its job, when it is the lane's
-- armed one, records that worker as the lane's holder, for the recovery cron): as many as the lane's concurrency
-- (max_concurrency, across all workers: its in-flight set), its rate limit (a token bucket
-- shared by all workers) and the caller's free slots allow, earliest due first. Attempts
-- whose lease ran out (their worker died) go back to the lane first, due now.
-- Deliveries of a deleted or disabled subscription are handed out regardless of limits, so
-- they can be closed without a request.
-- The limits come resolved from Python (relay.domain.lane_limits: max_concurrency, a rate
-- limit per second, 0 for none, and probes), never read from the subscription's JSON here.
-- While the lane's breaker is half-open (tripped, its hold over) at most `probes`
-- deliveries are in flight.
-- Returns {status, next due ms or '', subscription config, enabled, disabled reason,
-- failing clock, then the breaker (HOLD_FIELDS but hold_reason: tripped, trips, hold_until,
-- bw, bo, bf, po, pf), then per claimed delivery: id, the fields of DELIVERY_FIELDS, event
-- metadata, body}; status is 'ok', 'empty' (nothing due: next due says when), 'paused',
-- 'hold' (backing off: next due is the end of the hold), 'rate' (next due: the next token)
-- or 'full'. A paused lane is claimed
-- only by its listener (relay.delivery.listen).
-- include: lib/lanes.lua
local lane_key, flight_key, state_key, sub_key, failing_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, sub_id, now_ms, lease_until_ms, want, max_concurrency, rate_limit, job_id, worker_id, probes = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local now = tonumber(now_ms)

local owner = redis.call('HMGET', state_key, 'job', 'holder')
if owner[1] == job_id and owner[2] ~= worker_id then
  redis.call('HSET', state_key, 'holder', worker_id)
end
requeue_flight(lane_key, flight_key, now_ms, now_ms)

local function next_due()
  local first = redis.call('ZRANGE', lane_key, 0, 0, 'WITHSCORES')
  return first[2] or ''
end

local sub = redis.call('HMGET', sub_key, 'config', 'enabled', 'disabled_reason', 'paused')
local config, enabled, reason, paused = sub[1], sub[2], sub[3] or '', sub[4]
local head = {'', '', config or '', enabled or '', reason, redis.call('GET', failing_key) or ''}
local breaker = redis.call('HMGET', state_key, 'tripped', 'trips', 'hold_until', 'bw', 'bo', 'bf', 'po', 'pf')
for b = 1, 8 do head[#head + 1] = breaker[b] or '' end
-- A config this code cannot read (an older or buggy version's) closes the lane like a
-- deleted subscription: its deliveries are handed out to be closed with the reason, and
-- the lane's limits, unreadable too, do not apply.
local ok, cfg = pcall(cjson.decode, config or '')
if not ok or type(cfg) ~= 'table' then cfg = nil end
local open = cfg ~= nil and enabled == '1'
-- A `relay listen` subscription stays paused for the workers: only its listener's stream
-- (the job id 'listen:<sub>') drains it, within the same limits and leases.
if open and paused == '1' and job_id ~= 'listen:' .. sub_id then head[1] = 'paused'; return head end
local state = redis.call('HMGET', state_key, 'tokens', 'tokens_at')
local hold = tonumber(breaker[3] or '0')
if open and hold > now then head[1], head[2] = 'hold', tostring(hold); return head end

local n = tonumber(want)
local rate, burst, tokens = nil, 0, 0
if open then
  local cap = tonumber(max_concurrency)
  if breaker[1] == '1' then cap = math.min(cap, tonumber(probes)) end
  n = math.min(n, cap - redis.call('ZCARD', flight_key))
  if n <= 0 then head[1], head[2] = 'full', next_due(); return head end
  rate = tonumber(rate_limit)
  if rate <= 0 then rate = nil end
  if rate ~= nil then
    -- A tenth of a second's worth of tokens at most: smooth, with no bursts to speak of.
    burst = math.max(1, rate / 10)
    tokens = tonumber(state[1] or burst)
    tokens = math.min(burst, tokens + math.max(0, now - tonumber(state[2] or now_ms)) * rate / 1000)
    if tokens < 1 then
      redis.call('HSET', state_key, 'tokens', tostring(tokens), 'tokens_at', now_ms)
      head[1], head[2] = 'rate', tostring(now + math.ceil((1 - tokens) * 1000 / rate))
      return head
    end
    n = math.min(n, math.floor(tokens))
  end
end

local ids = redis.call('ZRANGEBYSCORE', lane_key, '-inf', now_ms, 'LIMIT', 0, n)
local claimed = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', lane_key, id)
  local delivery_key = prefix .. 'dlv:' .. id
  local fields = redis.call('HMGET', delivery_key, unpack(DELIVERY_FIELDS))
  if fields[1] then
    redis.call('HSET', delivery_key, 'status', 'delivering', 'lease_until', lease_until_ms,
      'updated_at', now_ms)
    redis.call('ZADD', flight_key, lease_until_ms, id)
    local event_key = prefix .. 'evt:' .. fields[1]
    head[#head + 1] = id
    for _, v in ipairs(fields) do head[#head + 1] = v or '' end
    head[#head + 1] = redis.call('GET', event_key) or ''
    head[#head + 1] = redis.call('GET', event_key .. ':body') or ''
    claimed = claimed + 1
  else
    -- Expired with the retention period: if it headed an ordering key, the next one goes.
    local heads = redis.call('HGETALL', prefix .. 'lane:' .. sub_id .. ':heads')
    for h = 1, #heads, 2 do
      if heads[h + 1] == id then advance_fifo(prefix, sub_id, id, heads[h], now_ms) end
    end
  end
end
if rate then
  redis.call('HSET', state_key, 'tokens', tostring(tokens - claimed), 'tokens_at', now_ms)
end
head[1] = (claimed > 0) and 'ok' or 'empty'
head[2] = next_due()
return head
