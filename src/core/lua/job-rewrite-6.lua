--[[
  Applies an operator's change to one job (`job fix`, `job requeue`): writes the document TypeScript
  computed with the codec and/or moves the id from wherever it is to one ready list. Nothing is written
  unless the stored document is still the exact bytes the caller read (sha1) and the id is still in
  exactly the places the caller saw (a worker may have taken it, another operator may have moved it).
  Every check runs before the first write, so a refusal or an error leaves everything as it was.

  KEYS[1]  job document key
  KEYS[2]  processing list
  KEYS[3]  dead-letter list
  KEYS[4]  scheduled sorted set
  KEYS[5]  leases sorted set
  KEYS[6]  lease owners hash
  ARGV[1]  job id
  ARGV[2]  sha1 (hex) of the document bytes the caller read
  ARGV[3]  expected presence of the id, one character per place ('1' present, '0' absent), in this order:
           the m ready lists below, then processing, dead, scheduled, leases, lease owners
  ARGV[4]  new document ("" = leave the document as it is)
  ARGV[5]  "keep": the document keeps its current TTL; "persist": it no longer expires (with or
           without a new document)
  ARGV[6]  ready list to move the id to ("" = move nothing: every place stays as it is). The id is
           removed from every place (all occurrences: each ready list, processing, dead, scheduled,
           its lease and lease owner, which discards the settlement of a worker still running it) and
           LPUSHed on this list (the producers' end: it runs after the jobs already waiting)
  ARGV[7]  signal key to wake after the move ("" = none)
  ARGV[8]  m, the number of ready lists, then the m list keys (the target list is one of them)
  Returns  {"ok", key1, removed1, key2, removed2, ...}: the entries removed per key (only keys where
           something was removed); {"changed"} when the document is not the one read; {"moved"} when
           the id is not where it was read. Nothing is written in the last two cases.
]]
local docKey = KEYS[1]
local id, expectedSha, expectedPresence = ARGV[1], ARGV[2], ARGV[3]
local newDoc, ttlMode, target, signal = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local m = tonumber(ARGV[8])
local places = { ready = {}, processing = KEYS[2], dead = KEYS[3], scheduled = KEYS[4], leases = KEYS[5], owners = KEYS[6] }
for i = 1, m do places.ready[i] = ARGV[8 + i] end

-- There must be a document to rewrite, and it must be the one read.
local current = redis.call('GET', docKey)
if not current or not bananasIsDocument(current, expectedSha) then return { 'changed' } end

if table.concat(bananasPresence(id, places)) ~= expectedPresence then return { 'moved' } end

if newDoc ~= '' then
  if ttlMode == 'keep' then
    redis.call('SET', docKey, newDoc, 'KEEPTTL')
  else
    redis.call('SET', docKey, newDoc)
  end
elseif ttlMode == 'persist' then
  redis.call('PERSIST', docKey)
end

local out = { 'ok' }
if target ~= '' then
  bananasUnreference(out, id, places)
  redis.call('LPUSH', target, id)
  if signal ~= '' then bananasWake(signal) end
end
return out
