--[[
  `scan corrupt`: looks again, in one step, at where an id is referenced now, to confirm a finding made
  while paging (an id moved by a worker between two pages can look duplicated or unreferenced).
  Read-only. Each list is searched with LPOS (it stops at the second hit; a miss reads the whole list),
  so callers pass only the lists that matter and confirm only the candidates the paging found.

  KEYS[1]  scheduled sorted set
  ARGV[1]  the id's job document key
  ARGV[2]  id
  ARGV[3..] list keys to search
  Returns  { 1 if the id is in the scheduled set else 0,
             { occurrences of the id in each list, capped at 2, in ARGV order },
             PTTL of the document (-2: no document, -1: no TTL) }
]]
local scheduled = KEYS[1]
local jobKey, id = ARGV[1], ARGV[2]
local counts = {}
for i = 3, #ARGV do
  local hits = redis.call('LPOS', ARGV[i], id, 'COUNT', 2)
  counts[#counts + 1] = #hits
end
local inScheduled = redis.call('ZSCORE', scheduled, id) and 1 or 0
return { inScheduled, counts, redis.call('PTTL', jobKey) }
