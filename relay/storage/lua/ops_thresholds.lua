-- Watches one subscription's backlog (waiting in its lane and in flight) and dead letters
-- against their thresholds, with hysteresis: crossing a threshold emits one operational
-- event and raises a flag (ops:alerts); only falling to its recovery mark emits the
-- "recovered" one and lowers the flag, so a count hovering around a threshold is reported
-- once, not on every pass. A threshold of 0 watches nothing.
-- ops: relay.storage.ops.OpsContext, with the types backlog exceeded, backlog recovered,
-- dead letters exceeded, dead letters recovered, in that order.
-- Returns the ids of the events emitted.
-- include: lib/ops.lua
local lane_key, flight_key, sub_dead_key, alerts_key, sub_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local prefix, sub_id, ops, backlog_high, backlog_low, dead_high, dead_low = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]

if redis.call('EXISTS', sub_key) == 0 then
  redis.call('HDEL', alerts_key, sub_id .. ':backlog', sub_id .. ':dead_letters')
  return {}
end
local report = cjson.decode(ops)
local emitted = {}
local function watch(kind, count, high, low, n)
  high, low = tonumber(high), tonumber(low)
  local field = sub_id .. ':' .. kind
  local raised = redis.call('HEXISTS', alerts_key, field) == 1
  local data = {subscription_id = sub_id, threshold = high}
  data[kind] = count
  if not raised and high > 0 and count >= high then
    redis.call('HSET', alerts_key, field, count)
    emitted[#emitted + 1] = emit_ops_event(prefix, report, n, data)
  elseif raised and count <= low then
    redis.call('HDEL', alerts_key, field)
    emitted[#emitted + 1] = emit_ops_event(prefix, report, n + 1, data)
  end
end
watch('backlog', redis.call('ZCARD', lane_key) + redis.call('ZCARD', flight_key), backlog_high, backlog_low, 1)
watch('dead_letters', redis.call('ZCARD', sub_dead_key), dead_high, dead_low, 3)
return emitted
