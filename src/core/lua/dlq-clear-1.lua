--[[
  Removes a batch of dead-letter entries that an operator backed up (or just read): for each entry, in
  one step, the id leaves the dead-letter list and its document is deleted. An entry is removed only if
  its id is still in the dead-letter list and its document is byte for byte the one backed up (sha1), or
  still absent if it had none; otherwise nothing changes for it. Result hashes are never touched.

  Entries are removed by position as in dlq-requeue-1.lua (bananasLocator and bananasRemoveAt in
  _queue-keys.lua): one LRANGE checks the expected positions, an id that moved is looked for among the
  entries nearest the tail (LPOS RANK -1 MAXLEN); a contiguous block near the tail is cut out with LTRIM,
  anything else goes by tombstones (LSET, then one LREM).

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

local function base(i) return 5 + (i - 1) * GROUP end

local hints, jobKeys = {}, {}
for i = 1, n do
  hints[i] = tonumber(ARGV[base(i) + 2])
  jobKeys[i] = jobPrefix .. ARGV[base(i)]
end
local locate = bananasLocator(dead, hints, slack)
local documents = bananasMget(jobKeys)

local status, positions, deletes = {}, {}, {}
for i = 1, n do
  local b = base(i)
  local id, sha = ARGV[b], ARGV[b + 1]
  local position = locate(id, hints[i])
  if not position then
    status[i] = -1
  elseif not bananasIsDocument(documents[i], sha) then
    status[i] = 0
  else
    positions[#positions + 1] = position
    if sha ~= '' and ARGV[b + 3] == '1' then
      status[i] = 2
      deletes[#deletes + 1] = jobPrefix .. id
    else
      status[i] = 1
    end
  end
end

bananasRemoveAt(dead, positions, slack, tomb)
bananasVariadic('DEL', nil, deletes)
return status
