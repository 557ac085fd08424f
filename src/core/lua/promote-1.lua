--[[
  Moves due scheduled jobs (delayed jobs and retries) to their ready lists. The ZREM and the push happen
  in one script, so a job is promoted exactly once even when many workers promote at the same time.
  The document is read (for its priority and routing key) but never rewritten. A member whose document
  is missing is pushed to the default normal list, where the next dequeue dead-letters it.

  KEYS[1]  scheduled sorted set
  ARGV[1]  key prefix ("bananas:")
  ARGV[2]  now, Unix seconds (may be fractional)
  ARGV[3]  most jobs to move in this call
  Returns  { moved, score of the earliest job still scheduled or false, then key, kind pairs }: a job
           whose ready list holds another kind of value is left in the scheduled set (nothing is written to
           that list) and the list is reported once with its kind (TYPE).
]]
local scheduled = KEYS[1]
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved = 0
local woken = {}
local skipped, wrongLists = 0, {}
local out = { 0, false }
-- Skipped jobs stay at the front of the due range: each page starts after them.
while moved < limit do
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', skipped, limit - moved)
  if #due == 0 then break end
  for _, id in ipairs(due) do
    local doc = bananasDocument(prefix .. 'job:' .. id)
    local list, routingKey = bananasRoutedList(prefix, doc)
    if not bananasUsable(list, 'list') then
      skipped = skipped + 1
      if not wrongLists[list] then
        wrongLists[list] = true
        out[#out + 1] = list
        out[#out + 1] = bananasKindOf(list)
      end
    elseif redis.call('ZREM', scheduled, id) == 1 then
      bananasPushRouted(prefix, id, list, routingKey, 'LPUSH', woken)
      moved = moved + 1
    end
  end
  -- Bounds the work of one call when many due jobs are skipped.
  if skipped >= limit then break end
end
local nextDue = redis.call('ZRANGE', scheduled, 0, 0, 'WITHSCORES')
out[1] = moved
out[2] = nextDue[2] or false
return out
