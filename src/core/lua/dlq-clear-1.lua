--[[
  Removes a batch of dead-letter entries that an operator backed up (or just read): for each entry, in
  one step, the id leaves the dead-letter list and its document is deleted. An entry is removed only if
  its id is still in the dead-letter list and its document is byte for byte the one backed up (sha1), or
  still absent if it had none; otherwise nothing changes for it. Result hashes are never touched.

  Entries are removed by position as in dlq-requeue-1.lua: one LRANGE checks the expected positions, an
  id that moved is looked for among the entries nearest the tail (LPOS RANK -1 MAXLEN); a contiguous
  block near the tail is cut out with LTRIM, anything else goes by tombstones (LSET, then one LREM).

  KEYS[1]  dead-letter list
  ARGV[1]  tombstone: a random value no id can take (it never outlives the script)
  ARGV[2]  search slack: how many entries beyond its hint to look for an id that moved; also the most
           entries kept at the tail that the LTRIM path puts back
  ARGV[3]  job key prefix ("<prefix>job:")
  ARGV[4]  number of entries n, then n groups of 4:
             id, sha1 (hex) of the document as backed up ("" = it had no document),
             position hint (negative index from the tail; "0" = unknown: search the whole list),
             delete the document ("1") or keep it ("0": the caller saw a live job's document)
  Returns  an array of n integers, in order:
             2 removed and its document deleted; 1 removed (no document, or the document was kept);
             0 left in the dead-letter list (its document changed since it was backed up);
             -1 the id is no longer in the dead-letter list (nothing changed)
]]
local dead, tomb = KEYS[1], ARGV[1]
local slack = tonumber(ARGV[2])
local jobPrefix = ARGV[3]
local n = tonumber(ARGV[4])
local GROUP = 4
local CHUNK = 500

local function base(i) return 5 + (i - 1) * GROUP end

local function variadic(command, key, list)
  for from = 1, #list, CHUNK do
    local to = math.min(from + CHUNK - 1, #list)
    if key then
      redis.call(command, key, unpack(list, from, to))
    else
      redis.call(command, unpack(list, from, to))
    end
  end
end

local low, high = 0, nil
for i = 1, n do
  local hint = tonumber(ARGV[base(i) + 2])
  if hint < 0 then
    if hint < low then low = hint end
    if not high or hint > high then high = hint end
  end
end
local window = {}
if high then
  local length = redis.call('LLEN', dead)
  if low < -length then low = -length end
  if high >= low then window = redis.call('LRANGE', dead, low, high) end
end

local documents = {}
do
  local jobKeys = {}
  for i = 1, n do jobKeys[i] = jobPrefix .. ARGV[base(i)] end
  for from = 1, n, CHUNK do
    local part = redis.call('MGET', unpack(jobKeys, from, math.min(from + CHUNK - 1, n)))
    for j = 1, #part do documents[from + j - 1] = part[j] end
  end
end

local status, positions, deletes = {}, {}, {}
local removed = 0
for i = 1, n do
  local b = base(i)
  local id, sha, hint = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2])
  local position
  if hint < 0 and hint >= low and window[hint - low + 1] == id then
    position = hint
  elseif hint < 0 then
    position = redis.call('LPOS', dead, id, 'RANK', -1, 'MAXLEN', slack - hint)
  else
    position = redis.call('LPOS', dead, id, 'RANK', -1)
  end
  local doc = documents[i]
  local same
  if sha == '' then
    same = not doc
  else
    same = doc and redis.sha1hex(doc) == sha
  end
  if not position then
    status[i] = -1
  elseif not same then
    status[i] = 0
  else
    removed = removed + 1
    positions[removed] = position
    if sha ~= '' and ARGV[b + 3] == '1' then
      status[i] = 2
      deletes[#deletes + 1] = jobPrefix .. id
    else
      status[i] = 1
    end
  end
end

if removed > 0 then
  local kept = -positions[1] - 1
  local contiguous = kept >= 0 and kept <= slack
  for k = 1, removed do
    if positions[k] ~= -(kept + k) then contiguous = false end
  end
  if contiguous then
    local after = {}
    if kept > 0 then after = redis.call('LRANGE', dead, -kept, -1) end
    redis.call('LTRIM', dead, 0, -(kept + removed + 1))
    if kept > 0 then variadic('RPUSH', dead, after) end
  else
    for k = 1, removed do redis.call('LSET', dead, positions[k], tomb) end
    redis.call('LREM', dead, -removed, tomb)
  end
  variadic('DEL', nil, deletes)
end
return status
