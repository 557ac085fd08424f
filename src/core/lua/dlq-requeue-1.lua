--[[
  Requeues a batch of dead-letter entries. For each entry, in one step: the id leaves the dead-letter
  list, its new document (computed by the caller with the job codec) is stored without a TTL, the id is
  pushed on its ready list and the route's idle workers are woken. An entry is applied only if its id is
  still in the dead-letter list and its document is byte for byte the one the caller read (the caller
  sends those bytes back); otherwise nothing changes for it (another operator moved it, or a worker or
  an edit rewrote it).

  Entries are removed by position, not by value: the caller says where it expects each one (a negative
  index from the tail). One LRANGE checks every expected position; an id that moved is looked for among
  the entries nearest the tail (LPOS RANK -1 MAXLEN). When the entries to remove form one contiguous
  block near the tail (the usual case) they are cut out with LTRIM; otherwise each is overwritten with a
  tombstone (LSET) and all tombstones go with one LREM (bananasLocator and bananasRemoveAt in
  _queue-keys.lua). A sweep that leaves many entries at the tail (a filtered requeue) thus costs
  O(depth) per batch, never an LREM rescanning them for every id.

  KEYS[1]  dead-letter list
  ARGV[1]  tombstone: a random value no id can take (it never outlives the script)
  ARGV[2]  search slack: how many entries beyond its hint to look for an id that moved; also the most
           entries kept at the tail that the LTRIM path puts back
  ARGV[3]  job key prefix ("<prefix>job:")
  ARGV[4]  number of targets t, then t pairs: ready list, signal key of its route
  then     number of entries n,
           then the entries' positions and targets as one string of n "<hint> <target>" pairs separated
             by spaces: hint = expected position (negative index from the tail; 0 = unknown: search the
             whole list), target = 1-based index into the pairs above,
           then n groups of 3: id, the document exactly as the caller read it, the new document
  Returns  an array of n integers, in order:
             1 requeued; 0 left in the dead-letter list (its document changed or vanished since it was
             read); -1 the id is no longer in the dead-letter list (nothing changed).
           A WRONGTYPE error, before any write, when a target ready list holds another kind of value.
]]
local dead, tomb = KEYS[1], ARGV[1]
local slack = tonumber(ARGV[2])
local jobPrefix = ARGV[3]
local t = tonumber(ARGV[4])
local n = tonumber(ARGV[5 + 2 * t])
local first = 7 + 2 * t
local GROUP = 3

local function base(i) return first + (i - 1) * GROUP end

-- Positions and targets travel as one argument (thousands of small arguments cost more than parsing).
local hints, targets = {}, {}
do
  local i = 0
  for hint, target in string.gmatch(ARGV[6 + 2 * t], '(-?%d+) (%d+)') do
    i = i + 1
    hints[i], targets[i] = tonumber(hint), tonumber(target)
  end
  if i ~= n then return redis.error_reply('ERR dlq-requeue: ' .. i .. ' positions for ' .. n .. ' entries') end
end

local locate = bananasLocator(dead, hints, slack)
local jobKeys = {}
for i = 1, n do jobKeys[i] = jobPrefix .. ARGV[base(i)] end
local documents = bananasMget(jobKeys)

local status, positions = {}, {}
for i = 1, n do
  local b = base(i)
  local position = locate(ARGV[b], hints[i])
  if not position then
    status[i] = -1
  elseif documents[i] ~= ARGV[b + 1] then
    status[i] = 0
  else
    status[i] = 1
    positions[#positions + 1] = position
  end
end

if #positions > 0 then
  -- The target lists, checked before the first write (Redis does not undo a failed script).
  local wanted = {}
  for i = 1, n do
    if status[i] == 1 then
      wanted[#wanted + 1] = ARGV[4 + 2 * targets[i] - 1]
      wanted[#wanted + 1] = 'list'
    end
  end
  local wrong = bananasWrongKind(wanted)
  if wrong then return wrong end
  bananasRemoveAt(dead, positions, slack, tomb)

  local writes, pushes, order = {}, {}, {}
  for i = 1, n do
    if status[i] == 1 then
      local b = base(i)
      local id, target = ARGV[b], targets[i]
      writes[#writes + 1] = jobPrefix .. id
      writes[#writes + 1] = ARGV[b + 2]
      if not pushes[target] then
        pushes[target] = {}
        order[#order + 1] = target
      end
      local ids = pushes[target]
      ids[#ids + 1] = id
    end
  end
  bananasVariadic('MSET', nil, writes)
  for _, target in ipairs(order) do
    bananasVariadic('LPUSH', ARGV[4 + 2 * target - 1], pushes[target])
    bananasWake(ARGV[4 + 2 * target])
  end
end
return status
