-- Reports Redis's eviction policy as operational events, once per change whatever the
-- number of relay processes watching it: a policy that may evict ("maxmemory_policy" is
-- not noeviction) emits the first type and raises a flag in ops:alerts; noeviction again
-- emits the second and lowers it. A policy that changes from one evicting value to
-- another is reported again.
-- ops: relay.storage.ops.OpsContext, with the types policy unsafe, policy restored.
-- Returns the ids of the events emitted.
-- include: lib/ops.lua
local alerts_key = KEYS[1]
local prefix, ops, policy, required = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local field = 'redis:maxmemory_policy'
local raised = redis.call('HGET', alerts_key, field)
local report = cjson.decode(ops)
local data = {maxmemory_policy = policy, required = required}
if policy ~= required then
  if raised == policy then return {} end
  redis.call('HSET', alerts_key, field, policy)
  return {emit_ops_event(prefix, report, 1, data)}
end
if not raised then return {} end
redis.call('HDEL', alerts_key, field)
return {emit_ops_event(prefix, report, 2, data)}
