--[[
  Enqueues a batch of jobs. Each job's document and its queue entry are written in one atomic step;
  an id whose document already exists is refused and nothing is written for it.

  KEYS[1]  scheduled sorted set
  ARGV[1]  job key prefix ("<prefix>job:")
  ARGV[2]  number of jobs n, followed by n groups of 5:
             id, document, ready list key, signal key, score
           score "" → LPUSH id on the ready list; otherwise ZADD score id on the scheduled set
           (Unix seconds) and wake the route so an idle worker re-reads the next due time.
  Returns  an array of n integers: 1 enqueued, 0 refused (duplicate id); a WRONGTYPE error, before any
           write, when a ready list or the scheduled set to write holds another kind of value.
]]
local scheduled = KEYS[1]
local jobPrefix = ARGV[1]
local n = tonumber(ARGV[2])
local results = {}
local woken = {}
-- Ready ids are pushed at the end, one variadic LPUSH per list, in the order given.
local ready, readyLists = {}, {}
-- Every key this batch writes to, checked before the first write (Redis does not undo a failed script).
local wanted = {}
for i = 0, n - 1 do
  local base = 3 + i * 5
  if ARGV[base + 4] == '' then
    wanted[#wanted + 1] = ARGV[base + 2]
    wanted[#wanted + 1] = 'list'
  else
    wanted[#wanted + 1] = scheduled
    wanted[#wanted + 1] = 'zset'
  end
end
local wrong = bananasWrongKind(wanted)
if wrong then return wrong end
for i = 0, n - 1 do
  local base = 3 + i * 5
  local id, doc, list, signal, score = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  if redis.call('SET', jobPrefix .. id, doc, 'NX') then
    if score == '' then
      local ids = ready[list]
      if not ids then
        ids = {}
        ready[list] = ids
        readyLists[#readyLists + 1] = list
      end
      ids[#ids + 1] = id
    else
      redis.call('ZADD', scheduled, score, id)
    end
    bananasWakeOnce(signal, woken)
    results[#results + 1] = 1
  else
    results[#results + 1] = 0
  end
end
for _, list in ipairs(readyLists) do bananasVariadic('LPUSH', list, ready[list]) end
return results
