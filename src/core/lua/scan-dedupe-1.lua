--[[
  `scan corrupt --repair`: an id referenced in more than one place would run more than once. Keeps the
  reference in the most advanced place (chosen by the caller: processing, else a ready list, else the
  scheduled set) and removes the others. Re-checked here, at repair time: nothing happens unless the kept
  place still holds the id. Dead-letter entries are never passed here (they are history, not work).

  KEYS[1]  scheduled sorted set
  ARGV[1]  id
  ARGV[2]  the kept place: a list key, or the scheduled set's key
  ARGV[3]  'list' or 'zset': the type of the kept place
  ARGV[4]  '1' to remove the id from the scheduled set (never when the scheduled set is the kept place)
  ARGV[5..] other lists to remove every occurrence of the id from
  Returns  the number of references removed (extra occurrences in the kept list included); -1 when the
           kept place no longer holds the id (nothing was done)
]]
local scheduled = KEYS[1]
local id, keep, keepKind, fromScheduled = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local removed = 0
if keepKind == 'zset' then
  if not redis.call('ZSCORE', keep, id) then return -1 end
else
  local hits = #redis.call('LPOS', keep, id, 'COUNT', 0)
  if hits == 0 then return -1 end
  -- A positive count removes from the left (newest): the occurrence nearest the consumer stays.
  if hits > 1 then removed = removed + redis.call('LREM', keep, hits - 1, id) end
end
for i = 5, #ARGV do
  removed = removed + redis.call('LREM', ARGV[i], 0, id)
end
if fromScheduled then removed = removed + redis.call('ZREM', scheduled, id) end
return removed
