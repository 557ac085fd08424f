--[[
  Deletes one job and every reference to it (`job delete`): its document, its result hash, every
  occurrence of its id in the ready lists, processing, dead and scheduled, its lease and lease owner (a
  worker still running it then finds its lease gone and writes nothing). Nothing is deleted unless the
  document is still the exact bytes the caller read (sha1) and the id is still in exactly the places the
  caller saw (and showed the operator). Every check runs before the first write.

  KEYS[1]  job document key
  KEYS[2]  result hash key
  KEYS[3]  processing list
  KEYS[4]  dead-letter list
  KEYS[5]  scheduled sorted set
  KEYS[6]  leases sorted set
  KEYS[7]  lease owners hash
  ARGV[1]  job id
  ARGV[2]  sha1 (hex) of the document bytes the caller read, "" when there was no document
  ARGV[3]  expected presence of the id, one character per place ('1' present, '0' absent), in this order:
           the m ready lists below, then processing, dead, scheduled, leases, lease owners, result hash
  ARGV[4]  m, the number of ready lists, then the m list keys
  Returns  {"ok", key1, removed1, key2, removed2, ...}: what was removed per key (only keys where
           something was removed; 1 for a deleted document or result hash); {"changed"} when the
           document is not the one read; {"moved"} when the id is not where it was read. Nothing is
           deleted in the last two cases.
]]
local docKey, resultKey = KEYS[1], KEYS[2]
local id, expectedSha, expectedPresence = ARGV[1], ARGV[2], ARGV[3]
local m = tonumber(ARGV[4])
local places = { ready = {}, processing = KEYS[3], dead = KEYS[4], scheduled = KEYS[5], leases = KEYS[6], owners = KEYS[7] }
for i = 1, m do places.ready[i] = ARGV[4 + i] end

if not bananasIsDocument(redis.call('GET', docKey), expectedSha) then return { 'changed' } end

local presence = bananasPresence(id, places)
presence[#presence + 1] = redis.call('EXISTS', resultKey) == 1 and '1' or '0'
if table.concat(presence) ~= expectedPresence then return { 'moved' } end

local out = { 'ok' }
bananasCountRemoved(out, docKey, redis.call('DEL', docKey))
bananasCountRemoved(out, resultKey, redis.call('DEL', resultKey))
bananasUnreference(out, id, places)
return out
