--[[
  Moves up to `want` ready jobs into processing, in strict list order (the caller passes its lists
  priority-major), and records a lease (owner, deadline) for each. The id stays in the original
  processing list so the original tools keep a consistent picture. An id whose document is missing is
  dead-lettered at once with the original's stub ("Job data not found").

  KEYS[1]  processing list
  KEYS[2]  leases sorted set (id → deadline ms)
  KEYS[3]  lease owners hash (id → worker id)
  KEYS[4]  dead-letter list
  ARGV[1]  job key prefix ("<prefix>job:")
  ARGV[2]  worker id (lease owner)
  ARGV[3]  lease deadline, Unix ms
  ARGV[4]  want: how many jobs to take at most
  ARGV[5]  TTL in seconds of the stub written for a missing document
  ARGV[6]  signal key to re-arm when jobs remain after a full batch ("" = none)
  ARGV[7]  number of ready lists m, then the m list keys
  then     lookahead L (0 = take any job), then the number of job names t and the t names:
           with a job-name filter only the L oldest entries of each list are examined and only jobs
           with a listed name (or an unreadable document, which any worker dead-letters) are taken;
           the others stay where they are.
  Returns  a flat array of triples: id, document (false when it was missing), index of the list (1-based);
           a ready list holding another kind of value is skipped (nothing is written to it, the next lists
           are served) and reported as the triple: list key, its kind (TYPE), minus the list's index; a
           second entry of an id this call took already (a duplicate in a ready list) is removed from its
           list without being taken again, and reported as the triple: id, false, 0.
           A WRONGTYPE error, before any write, when processing, the leases, the owners or the dead-letter
           list holds another kind of value.
]]
local processing, leases, owners, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local jobPrefix, owner, deadline = ARGV[1], ARGV[2], ARGV[3]
local want = tonumber(ARGV[4])
local stubTtl = ARGV[5]
local rearm = ARGV[6]
local m = tonumber(ARGV[7])
local lookahead = tonumber(ARGV[8 + m])
local t = tonumber(ARGV[9 + m])
local allowed = {}
for i = 1, t do allowed[ARGV[9 + m + i]] = true end

-- RPOP with a count exists since Redis 6.2; REDIS_VERSION_NUM since 7.0 (older servers pop one by one).
local popMany = (redis.REDIS_VERSION_NUM or 0) >= 0x060200
local out = {}
local taken = 0
local budget = want * 4 + 100 -- bounds the work of one call when many ids have no document

-- The ids this call took or dead-lettered: a second entry of one is dropped (reported with index 0).
local seen = {}

local function duplicate(id)
  out[#out + 1] = id
  out[#out + 1] = false
  out[#out + 1] = 0
end

local function missing(id, listIndex)
  seen[id] = true
  redis.call('LPUSH', dead, id)
  redis.call('SET', jobPrefix .. id,
    cjson.encode({ error = 'Job data not found (corrupted reference)', id = id }), 'EX', stubTtl, 'NX')
  out[#out + 1] = id
  out[#out + 1] = false
  out[#out + 1] = listIndex
end

-- The processing, lease and owner writes of the jobs taken are made at the end, one variadic command each.
local takenIds, leaseArgs, ownerArgs = {}, {}, {}

local function take(id, doc, listIndex)
  seen[id] = true
  takenIds[#takenIds + 1] = id
  leaseArgs[#leaseArgs + 1] = deadline
  leaseArgs[#leaseArgs + 1] = id
  ownerArgs[#ownerArgs + 1] = id
  ownerArgs[#ownerArgs + 1] = owner
  out[#out + 1] = id
  out[#out + 1] = doc
  out[#out + 1] = listIndex
  taken = taken + 1
end

local function wanted(doc)
  local ok, decoded = pcall(cjson.decode, doc)
  if not ok or type(decoded) ~= 'table' or type(decoded['name']) ~= 'string' then return true end
  return allowed[decoded['name']] == true
end

-- The keys every taken job is written to, checked before the first write (the first pop).
local fixedChecked = false

for li = 1, m do
  if taken >= want or budget <= 0 then break end
  local list = ARGV[7 + li]
  local length = redis.pcall('LLEN', list)
  if bananasIsWrongType(length) then
    -- Another kind of value: skipped (nothing is written to it), and reported to the caller.
    out[#out + 1] = list
    out[#out + 1] = bananasKindOf(list)
    out[#out + 1] = -li
  elseif type(length) == 'table' then
    -- Another error (e.g. NOPERM): reported while nothing was popped yet, otherwise the jobs taken so
    -- far are written and returned.
    if not fixedChecked then return length end
    break
  elseif length > 0 then
    if not fixedChecked then
      fixedChecked = true
      local wrong = bananasWrongKind({ processing, 'list', leases, 'zset', owners, 'hash', dead, 'list' })
      if wrong then return wrong end
    end
    if lookahead == 0 then
      while taken < want and budget > 0 do
        -- Pop as many ids as are still wanted (one RPOP with a count where Redis has it, 6.2+), then read
        -- their documents with one MGET.
        local count = math.min(want - taken, budget)
        local ids
        if popMany then
          ids = redis.call('RPOP', list, count) or {}
        else
          ids = {}
          for _ = 1, count do
            local id = redis.call('RPOP', list)
            if not id then break end
            ids[#ids + 1] = id
          end
        end
        if #ids == 0 then break end
        budget = budget - #ids
        local docKeys = {}
        for i = 1, #ids do docKeys[i] = jobPrefix .. ids[i] end
        local docs = bananasMget(docKeys)
        for i = 1, #ids do
          local id = ids[i]
          if seen[id] then duplicate(id) elseif docs[i] then take(id, docs[i], li) else missing(id, li) end
        end
        if #ids < count then break end
      end
    else
      local ids = redis.call('LRANGE', list, -lookahead, -1)
      for i = #ids, 1, -1 do
        if taken >= want or budget <= 0 then break end
        budget = budget - 1
        local id = ids[i]
        if seen[id] then
          redis.call('LREM', list, -1, id)
          duplicate(id)
        else
          local doc = redis.call('GET', jobPrefix .. id)
          if not doc then
            redis.call('LREM', list, -1, id)
            missing(id, li)
          elseif wanted(doc) then
            redis.call('LREM', list, -1, id)
            take(id, doc, li)
          end
        end
      end
    end
  end
end

-- A sorted set or hash with few entries is a listpack, where every member added, read or removed is a
-- scan of all the others: with dozens of jobs in flight the lease set and the owners hash cost a tenth of
-- Redis's CPU. Redis turns either into its indexed encoding (skiplist, hash table) when a member longer
-- than its listpack limit (64 bytes by default) arrives, and commands never turn it back while it has
-- members (a copy rebuilt from a dump, by a restart, a full resync or RESTORE, is compact again until
-- the next dequeue that takes jobs). So once INDEX_FROM jobs are in flight, a long member is added to
-- both and removed again in this (atomic) call: the same entries remain, indexed. Job ids bananas
-- accepts have no spaces, and a member of that name already there is left alone (NX, HEXISTS). This is
-- only an optimisation and runs after the jobs were taken: every command is a pcall, so an error (a user
-- not allowed ZRANGE, say) leaves the keys as they are and fails nothing. It uses commands the worker's
-- ACL rules allow anyway; a user refused the ZREM or HDEL after the add could not settle a job either
-- (the settlement runs both).
local INDEX_FROM = 16
local INDEX_MEMBER = 'bananas: index this key (a member longer than a listpack takes) '
  .. string.rep('.', 64)

local function indexLeaseKeys()
  local last = redis.pcall('ZRANGE', leases, INDEX_FROM - 1, INDEX_FROM - 1)
  if type(last) ~= 'table' or last['err'] or #last == 0 then return end -- fewer in flight, or refused
  if redis.pcall('ZADD', leases, 'NX', 0, INDEX_MEMBER) == 1 then
    redis.pcall('ZREM', leases, INDEX_MEMBER)
  end
  if redis.pcall('HEXISTS', owners, INDEX_MEMBER) == 0
    and redis.pcall('HSET', owners, INDEX_MEMBER, INDEX_MEMBER) == 1 then
    redis.pcall('HDEL', owners, INDEX_MEMBER)
  end
end

if taken > 0 then
  bananasVariadic('LPUSH', processing, takenIds)
  bananasVariadic('ZADD', leases, leaseArgs)
  bananasVariadic('HSET', owners, ownerArgs)
  indexLeaseKeys()
end

if rearm ~= '' and taken >= want then
  for li = 1, m do
    local length = redis.pcall('LLEN', ARGV[7 + li])
    if type(length) == 'number' and length > 0 then
      bananasWake(rearm)
      break
    end
  end
end
return out
