--[[
  `scan corrupt --repair`: puts an orphan back in line. An orphan is a job document without a TTL that no
  list or set references: nothing will ever run it (typically the original's non-atomic enqueue stopped
  between SET and LPUSH). The document is not modified. Re-checked here, at repair time: nothing happens
  unless the document still has the bytes the repair read (SHA-1 computed in TypeScript), still has no
  TTL, and the id is in none of the lists given nor in the scheduled set.

  KEYS[1]  scheduled sorted set
  ARGV[1]  the id's job document key
  ARGV[2]  id
  ARGV[3]  SHA-1 (hex) of the document bytes the repair read
  ARGV[4]  ready list to LPUSH the id on (as enqueue does), or '' to add it to the scheduled set
  ARGV[5]  score for the scheduled set (Unix seconds) when ARGV[4] is ''
  ARGV[6]  signal key of the job's route (woken so an idle worker looks)
  ARGV[7..] every list that must not hold the id (all ready lists, processing, dead-letter)
  Returns  1 when the id was put back; -1 when the state changed (nothing was done); a WRONGTYPE error,
           before any write, when the list or set to write holds another kind of value
]]
local scheduled = KEYS[1]
local jobKey, id, expectedSha, target, score, signal = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local doc = redis.call('GET', jobKey)
if not doc or not bananasIsDocument(doc, expectedSha) then return -1 end
if redis.call('PTTL', jobKey) ~= -1 then return -1 end
if redis.call('ZSCORE', scheduled, id) then return -1 end
for i = 7, #ARGV do
  if redis.call('LPOS', ARGV[i], id) then return -1 end
end
local wrong = bananasWrongKind(target == '' and { scheduled, 'zset' } or { target, 'list' })
if wrong then return wrong end
if target == '' then
  redis.call('ZADD', scheduled, score, id)
else
  redis.call('LPUSH', target, id)
end
bananasWake(signal)
return 1
