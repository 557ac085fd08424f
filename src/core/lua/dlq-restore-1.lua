--[[
  Restores a batch of entries from a dead-letter backup. Each entry is atomic and idempotent: its
  document is written only if no document exists under its key (SET NX), and only then is its id pushed
  (on the dead-letter list, or on a ready list with the route's idle workers woken). An existing document
  (the same job restored before, or a newer one) is never overwritten and nothing is pushed for it.

  KEYS[1]  dead-letter list
  ARGV[1]  job key prefix ("<prefix>job:")
  ARGV[2]  number of entries n, then n groups of 4:
             id, document, list to LPUSH the id on ("" = the dead-letter list),
             signal key to wake ("" = none)
  Returns  an array of n integers, in order: 1 restored; 0 skipped (a document exists); a WRONGTYPE
           error, before any write, when a list to push on holds another kind of value.
]]
local dead = KEYS[1]
local jobPrefix = ARGV[1]
local n = tonumber(ARGV[2])
local GROUP = 4
local status = {}
local woken = {}
-- The lists to push on, checked before the first write: a document stored without its id would be an
-- orphan that a second restore skips.
local wanted = {}
for i = 1, n do
  local list = ARGV[3 + (i - 1) * GROUP + 2]
  wanted[#wanted + 1] = list == '' and dead or list
  wanted[#wanted + 1] = 'list'
end
local wrong = bananasWrongKind(wanted)
if wrong then return wrong end
for i = 1, n do
  local b = 3 + (i - 1) * GROUP
  local id, doc, list, signal = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  if redis.call('SET', jobPrefix .. id, doc, 'NX') then
    if list == '' then list = dead end
    redis.call('LPUSH', list, id)
    if signal ~= '' then bananasWakeOnce(signal, woken) end
    status[i] = 1
  else
    status[i] = 0
  end
end
return status
