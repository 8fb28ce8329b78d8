-- Retention for lanes: drops from the lanes given the ids of deliveries whose records have
-- expired. A running lane drops them as it claims them, but a paused one claims nothing, so
-- without this its lane kept them for ever (and its backlog alert stayed raised). Only ids
-- due before cutoff_ms (now minus the retention period) are looked at: a delivery is due no
-- earlier than it was made (or reopened, which renews its records), so those are the only
-- ones that can have expired, and the walk is by range, not over the whole lane. An id whose
-- record still exists stays. A FIFO key whose head is dropped passes to the next delivery
-- behind it that still exists.
-- ARGV after the fixed ones: subscription ids. At most limit ids are dropped per lane.
-- Returns the number of ids dropped.
-- include: lib/lanes.lua
local prefix, cutoff_ms, now_ms, limit = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

limit = tonumber(limit)

local function expired(id)
  return redis.call('EXISTS', prefix .. 'dlv:' .. id) == 0
end

local dropped = 0
for i = 5, #ARGV do
  local sub_id = ARGV[i]
  local lane = lane_key(prefix, sub_id)
  local heads_key = lane_key(prefix, sub_id, 'heads')
  local fifo = redis.call('EXISTS', heads_key) == 1
  local kept, done = 0, 0
  while done < limit do
    local ids = redis.call('ZRANGEBYSCORE', lane, '-inf', '(' .. cutoff_ms, 'LIMIT', kept, limit - done)
    if #ids == 0 then break end
    for _, id in ipairs(ids) do
      if expired(id) then
        redis.call('ZREM', lane, id)
        done = done + 1
        local heads = fifo and redis.call('HGETALL', heads_key) or {}
        for h = 1, #heads, 2 do
          if heads[h + 1] == id then
            -- Those behind it that expired too go with it (they were made after it).
            local queued = lane_key(prefix, sub_id, 'q:' .. heads[h])
            while done < limit do
              local nxt = redis.call('LINDEX', queued, 0)
              if not nxt or not expired(nxt) then break end
              redis.call('LPOP', queued)
              done = done + 1
            end
            advance_fifo(prefix, sub_id, id, heads[h], now_ms)
          end
        end
      else
        kept = kept + 1
      end
    end
  end
  dropped = dropped + done
end
return dropped
