-- Forgets per-source and per-subscription indexes that trimming emptied, unless a write
-- filled them again in the meantime.
-- KEYS after the fixed one: the candidate indexes.
local registry_key = KEYS[1]

local forgotten = 0
for i = 2, #KEYS do
  if redis.call('ZCARD', KEYS[i]) == 0 then
    forgotten = forgotten + redis.call('SREM', registry_key, KEYS[i])
  end
end
return forgotten
