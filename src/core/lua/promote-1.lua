--[[
  Moves due scheduled jobs (delayed jobs and retries) to their ready lists. The ZREM and the push happen
  in one script, so a job is promoted exactly once even when many workers promote at the same time.
  The document is read (for its priority and routing key) but never rewritten. A member whose document
  is missing is pushed to the default normal list, where the next dequeue dead-letters it.

  KEYS[1]  scheduled sorted set
  ARGV[1]  key prefix ("bananas:")
  ARGV[2]  now, Unix seconds (may be fractional)
  ARGV[3]  most jobs to move in this call
  Returns  { moved, score of the earliest job still scheduled or false }
]]
local scheduled = KEYS[1]
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
local moved = 0
local woken = {}
for _, id in ipairs(due) do
  if redis.call('ZREM', scheduled, id) == 1 then
    bananasPushRouted(prefix, id, redis.call('GET', prefix .. 'job:' .. id), 'LPUSH', woken)
    moved = moved + 1
  end
end
local nextDue = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
return { moved, nextDue[2] or false }
