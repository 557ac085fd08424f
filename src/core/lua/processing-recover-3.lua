--[[
  Returns stuck jobs from processing to the head of their ready list (RPUSH: they run next), like the
  workers' lease recovery (recover-3.lua), for the ids the operator's `processing recover` (or
  `scan corrupt --repair`) chose. Each id is re-checked here, at move time: it must still be in processing
  with exactly the lease (deadline and owner) the caller saw, and, when given, the same document bytes
  (an original worker finishing the job rewrites its document before it removes the id). Ids that fail a
  check are left alone.

  KEYS[1]  processing list
  KEYS[2]  leases sorted set
  KEYS[3]  lease owners hash
  ARGV[1]  key prefix ("bananas:")
  ARGV[2]  number of ids n, then n groups of 4:
             id,
             expected lease deadline as ZSCORE returned it ('' = expect no lease),
             expected owner ('' = expect none),
             expected document SHA-1 hex ('' = do not check; '-' = expect no document)
  Returns  an array of n: the ready list the id was pushed on, or 0 when the state changed; a WRONGTYPE
           error, before any write, when a ready list to push on (or processing, the leases, the owners)
           holds another kind of value.
]]
local processing, leases, owners = KEYS[1], KEYS[2], KEYS[3]
local prefix, n = ARGV[1], tonumber(ARGV[2])
local out = {}
local woken = {}
-- Pass 1: the checks (reads only); pass 2, once every key to write is known to be usable: the moves.
local moves = {}
for i = 0, n - 1 do
  local b = 3 + i * 4
  local id, deadline, owner, sha = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local ok = redis.call('LPOS', processing, id) ~= false
  if ok then ok = (redis.call('ZSCORE', leases, id) or '') == deadline end
  if ok then ok = (redis.call('HGET', owners, id) or '') == owner end
  -- A job key of the wrong type reads as no document instead of failing the whole batch.
  local doc = bananasDocument(prefix .. 'job:' .. id)
  if ok and sha ~= '' then
    if sha == '-' then ok = not doc else ok = bananasIsDocument(doc, sha) end
  end
  if ok then
    local list, routingKey = bananasRoutedList(prefix, doc)
    moves[i + 1] = { id, list, routingKey }
  end
end
local wanted = { processing, 'list', leases, 'zset', owners, 'hash' }
for i = 1, n do
  if moves[i] then
    wanted[#wanted + 1] = moves[i][2]
    wanted[#wanted + 1] = 'list'
  end
end
local wrong = bananasWrongKind(wanted)
if wrong then return wrong end
for i = 1, n do
  local move = moves[i]
  if move then
    local id, list, routingKey = move[1], move[2], move[3]
    redis.call('LREM', processing, 0, id)
    redis.call('ZREM', leases, id)
    redis.call('HDEL', owners, id)
    out[i] = bananasPushRouted(prefix, id, list, routingKey, 'RPUSH', woken)
  else
    out[i] = 0
  end
end
return out
