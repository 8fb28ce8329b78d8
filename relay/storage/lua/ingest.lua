-- Stores one accepted webhook: the source revision check, the idempotency check-and-set, the
-- event's metadata and body, and the listing and "not fanned out yet" indexes, together.
-- Metadata and body are two plain strings: a hash holding a body of more than 64 bytes
-- leaves Redis's compact encoding and costs about 2 KB more per event.
-- An event no subscription can want (its source has none, and none is for every source) is
-- fanned out here, to nobody: the API then skips the fan-out step and its round trip.
-- A request that reaches Redis after deadline_ms (Redis's own clock; '0': none) is refused
-- and stores nothing: its sender has been told 503 by then (a stalled Redis runs the
-- commands it had queued once it resumes).
-- Returns {'accepted', event id, '1' if it waits for fan-out else '0'},
-- {'duplicate', first event id}, {'stale', current rev} or {'late', Redis's time in ms}.
local source_key, idempotency_key, event_key, body_key, events_key, source_events_key, unfanned_key, indexes_key, source_subs_key, every_source_subs_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local source_rev, use_idempotency, idempotency_ttl_s, event_id, received_ms, expire_at_ms, meta, body, deadline_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]

if tonumber(deadline_ms) > 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if now_ms > tonumber(deadline_ms) then return {'late', tostring(now_ms)} end
end

local rev = redis.call('HGET', source_key, 'rev')
if rev ~= source_rev then return {'stale', rev or ''} end
if use_idempotency == '1' then
  local first = redis.call('GET', idempotency_key)
  if first then return {'duplicate', first} end
  redis.call('SET', idempotency_key, event_id, 'EX', idempotency_ttl_s)
end
redis.call('SET', event_key, meta, 'PXAT', expire_at_ms)
redis.call('SET', body_key, body, 'PXAT', expire_at_ms)
redis.call('ZADD', events_key, 0, event_id)
redis.call('ZADD', source_events_key, 0, event_id)
redis.call('SADD', indexes_key, source_events_key)
if redis.call('EXISTS', source_subs_key, every_source_subs_key) == 0 then
  return {'accepted', event_id, '0'}
end
redis.call('ZADD', unfanned_key, received_ms, event_id)
return {'accepted', event_id, '1'}
