-- The one writer of a subscription's enabled state (fields enabled, disabled_reason), shared
-- by the scripts that change it, so an operator's change and the relay's own decision to
-- disable are written the same way. Every change bumps subs:rev, which tells processes
-- that cache subscriptions for fan-out to read them again.
local function set_subscription_state(sub_key, rev_key, enabled, reason)
  if enabled then reason = '' end
  redis.call('HSET', sub_key, 'enabled', enabled and '1' or '0', 'disabled_reason', reason)
  redis.call('INCR', rev_key)
end

-- Disables an enabled subscription; false when it was disabled already (its first reason
-- stays).
local function disable_subscription(sub_key, rev_key, reason)
  if redis.call('HGET', sub_key, 'enabled') ~= '1' then return false end
  set_subscription_state(sub_key, rev_key, false, reason)
  return true
end
