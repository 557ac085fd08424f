--[[
  `scan corrupt --repair`: moves an id whose document is corrupt (not JSON, not a job, or a stub the
  original wrote) from the places a worker would take it from to the dead-letter queue. The document is
  never modified or deleted. Re-checked here, at repair time: nothing happens unless the document still
  has the exact bytes the repair judged (SHA-1 computed in TypeScript over the bytes it read) and the
  processing entry still has the lease the repair saw.

  KEYS[1]  processing list
  KEYS[2]  leases sorted set
  KEYS[3]  lease owners hash
  KEYS[4]  scheduled sorted set
  KEYS[5]  dead-letter list
  ARGV[1]  the id's job document key
  ARGV[2]  id
  ARGV[3]  SHA-1 (hex) of the document bytes the repair judged corrupt
  ARGV[4]  processing: '-' leave it alone; '' take it out, expecting no lease; otherwise take it out,
           expecting exactly this lease deadline (as ZSCORE returned it)
  ARGV[5]  '1' to take the id out of the scheduled set
  ARGV[6..] ready lists to take every occurrence of the id out of
  Returns  the number of references removed; 0 when nothing references it any more; -1 when the document
           or the lease changed (nothing was done). The id is pushed on the dead-letter list once, unless
           it is there already. A WRONGTYPE error, before any write, when a key to write holds another kind
           of value.
]]
local processing, leases, owners, scheduled, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobKey, id, expectedSha, lease, fromScheduled = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'

local doc = redis.call('GET', jobKey)
if not doc or not bananasIsDocument(doc, expectedSha) then return -1 end
if lease ~= '-' and (redis.call('ZSCORE', leases, id) or '') ~= lease then return -1 end

-- Every key written, checked before the first write: an id taken out of a list and then refused by a
-- dead-letter list of another kind would be lost.
local wanted = { dead, 'list' }
for i = 6, #ARGV do
  wanted[#wanted + 1] = ARGV[i]
  wanted[#wanted + 1] = 'list'
end
if fromScheduled then
  wanted[#wanted + 1] = scheduled
  wanted[#wanted + 1] = 'zset'
end
if lease ~= '-' then
  for _, key in ipairs({ processing, 'list', leases, 'zset', owners, 'hash' }) do wanted[#wanted + 1] = key end
end
local wrong = bananasWrongKind(wanted)
if wrong then return wrong end

local removed = 0
for i = 6, #ARGV do
  removed = removed + redis.call('LREM', ARGV[i], 0, id)
end
if fromScheduled then removed = removed + redis.call('ZREM', scheduled, id) end
if lease ~= '-' then
  local n = redis.call('LREM', processing, 0, id)
  if n > 0 then
    redis.call('ZREM', leases, id)
    redis.call('HDEL', owners, id)
  end
  removed = removed + n
end
if removed > 0 and not redis.call('LPOS', dead, id) then
  redis.call('LPUSH', dead, id)
end
return removed
