-- Operational events (relay.domain.ops), written in the same step as the change they
-- report: an event of the internal source, "not fanned out yet". The process that made the
-- change fans it out at once; if it dies first, the recovery cron does.
-- ops is the JSON of relay.storage.ops.OpsContext, decoded: source, types and ids (the
-- events the step may emit, by position, with their ids made in advance), at (ms), iso (the
-- same time, ISO 8601), expire_at (ms). Emits the n-th.
local function emit_ops_event(prefix, ops, n, data)
  local event_id, event_type = ops.ids[n], ops.types[n]
  local body = cjson.encode({type = event_type, timestamp = ops.iso, data = data})
  local meta = cjson.encode({source = ops.source, event_type = event_type,
    received_at = ops.at, content_type = 'application/json', headers = {},
    idempotency_key = cjson.null, body_bytes = #body})
  local event_key = prefix .. 'evt:' .. event_id
  local source_events = prefix .. 'events:src:' .. ops.source
  redis.call('SET', event_key, meta, 'PXAT', ops.expire_at)
  redis.call('SET', event_key .. ':body', body, 'PXAT', ops.expire_at)
  redis.call('ZADD', prefix .. 'events', 0, event_id)
  redis.call('ZADD', source_events, 0, event_id)
  redis.call('SADD', prefix .. 'indexes', source_events)
  redis.call('ZADD', prefix .. 'events:unfanned', ops.at, event_id)
  return event_id
end

-- Nothing, as JSON: absent values of the delivery hash are stored as ''.
local function json_or_null(value)
  if value == nil or value == '' then return cjson.null end
  return value
end
