-- Writes a subscription: its configuration, its enabled state, and which sources' indexes
-- list it. A fresh start (enabled again, or pointed at a new URL) forgets its failing clock
-- and its lane's backoff. Bumps subs:rev (fan-out caches subscriptions by it).
-- KEYS after the fixed ones: the source indexes to leave, then the ones to join (ARGV says
-- how many leave).
-- include: lib/subscription_state.lua
local sub_key, subs_key, failing_key, subs_rev_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sub_id, config, enabled, disabled_reason, fresh_start, leaving = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

local first_join = 6 + tonumber(leaving)
for i = 6, first_join - 1 do redis.call('SREM', KEYS[i], sub_id) end
for i = first_join, #KEYS do redis.call('SADD', KEYS[i], sub_id) end
redis.call('HSET', sub_key, 'config', config)
set_subscription_state(sub_key, subs_rev_key, enabled == '1', disabled_reason)
if fresh_start == '1' then
  redis.call('DEL', failing_key)
  redis.call('HDEL', state_key, 'hold_until', 'fails')
end
redis.call('SADD', subs_key, sub_id)
return 1
