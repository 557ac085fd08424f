--[[
  Settles a batch of jobs a worker holds: completes them, schedules a retry, dead-letters them, or
  releases them back to a ready list. Each entry is applied only while the caller still owns the lease;
  otherwise it is skipped (another worker recovered the job) and reported as 0.

  KEYS[1]  processing list
  KEYS[2]  leases sorted set
  KEYS[3]  lease owners hash
  KEYS[4]  scheduled sorted set
  KEYS[5]  dead-letter list
  KEYS[6]  lifetime stats hash
  KEYS[7]  this minute's stats hash
  ARGV[1]  worker id (lease owner)
  ARGV[2]  job key prefix ("<prefix>job:")
  ARGV[3]  result key prefix ("<prefix>result:"); the notify channel is "<prefix>result:notify:<id>"
  ARGV[4]  result TTL seconds, completed
  ARGV[5]  result TTL seconds, failed
  ARGV[6]  TTL seconds of the minute stats hash
  ARGV[7]  TTL seconds of a completed document (short form below)
  ARGV[8]  number of entries n, then the n entries, each in one of two forms:
             10 fields: id, action (complete|retry|dead|release), document ("" = leave it untouched),
               document TTL seconds ("0" = none), score (retry: Unix seconds),
               target list (release: RPUSH so it is next; retry: signal key to wake),
               result status ("" = write no result), result JSON ("" = none), error text, duration ms;
             5 fields, a completion with its document and a completed result (most entries):
               id, "done", document, result JSON ("" = none), duration ms;
           then completed_at (one timestamp for the batch)
  Returns  an array of n integers: 1 applied, 0 lease no longer ours (nothing changed), -1 a release whose
           target list holds another kind of value (nothing changed: the job stays in processing under
           its lease). A WRONGTYPE error, before any write, when processing, the leases, the owners, the
           stats hashes or (when an entry needs them) the scheduled set or the dead-letter list hold
           another kind of value.
]]
local processing, leases, owners, scheduled, dead, stats, minuteStats =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local owner, jobPrefix, resultPrefix = ARGV[1], ARGV[2], ARGV[3]
local ttlCompleted, ttlFailed, minuteTtl, docTtlCompleted = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local n = tonumber(ARGV[8])
-- Where each entry starts in ARGV.
local starts = {}
local at = 9
for i = 1, n do
  starts[i] = at
  if ARGV[at + 1] == 'done' then at = at + 5 else at = at + 10 end
end
local completedAt = ARGV[at]
local results = {}
local counts = { completed = 0, retried = 0, failed = 0, released = 0 }

-- Every fixed key written, checked before the first write (Redis does not undo a failed script).
local wanted = { processing, 'list', leases, 'zset', owners, 'hash', stats, 'hash', minuteStats, 'hash' }
local needScheduled, needDead = false, false
for i = 1, n do
  local action = ARGV[starts[i] + 1]
  if action == 'retry' then needScheduled = true elseif action == 'dead' then needDead = true end
end
if needScheduled then
  wanted[#wanted + 1] = scheduled
  wanted[#wanted + 1] = 'zset'
end
if needDead then
  wanted[#wanted + 1] = dead
  wanted[#wanted + 1] = 'list'
end
local wrong = bananasWrongKind(wanted)
if wrong then return wrong end

-- Pass 1: which entries the caller still holds (an id given twice is applied once). Their lease and
-- owner entries go with one variadic command each; their ids come off processing.
local applied, appliedIds, seen = {}, {}, {}
local ids = {}
for i = 1, n do ids[i] = ARGV[starts[i]] end
local holders = bananasHmget(owners, ids)
for i = 1, n do
  local b = starts[i]
  local id, action = ARGV[b], ARGV[b + 1]
  if action == 'release' and not bananasUsable(ARGV[b + 5], 'list') then
    results[i] = -1
  elseif not seen[id] and holders[i] == owner then
    seen[id] = true
    applied[#applied + 1] = b
    appliedIds[#appliedIds + 1] = id
    results[i] = 1
  else
    results[i] = 0
  end
end
if #appliedIds > 0 then
  bananasVariadic('ZREM', leases, appliedIds)
  bananasVariadic('HDEL', owners, appliedIds)

  -- Their ids come off processing. They are mostly its oldest entries, at the tail (jobs end in about
  -- the order they were taken): that run goes with one LTRIM; any other id with LREM (the occurrence
  -- nearest the tail, as for a single id).
  local removing = {}
  for _, id in ipairs(appliedIds) do removing[id] = true end
  local tail = redis.call('LRANGE', processing, -#appliedIds, -1)
  local trimmed = 0
  for j = #tail, 1, -1 do
    if not removing[tail[j]] then break end
    removing[tail[j]] = nil
    trimmed = trimmed + 1
  end
  if trimmed > 0 then redis.call('LTRIM', processing, 0, -(trimmed + 1)) end
  for id in pairs(removing) do redis.call('LREM', processing, -1, id) end
end

-- Writes a result hash (the field-value pairs after `stale`) over what an earlier attempt left. HSET
-- answers how many fields it added: fewer than it wrote means the hash was there (every writer of result
-- hashes sets status, completed_at and duration_ms), and its `stale` fields (the ones of result and error
-- this write does not set) are removed. A key holding another kind of value is replaced. (Deleting every result hash first cost about 4 % of a settlement: a lookup of a key that is
-- not there is a memory access of its own.)
local function writeResult(key, stale, ...)
  local added = redis.pcall('HSET', key, ...)
  if type(added) ~= 'number' then
    -- Any other error (OOM, NOPERM) is raised as redis.call raises it.
    if not bananasIsWrongType(added) then return redis.call('HSET', key, ...) end
    redis.call('DEL', key)
    redis.call('HSET', key, ...)
  elseif #stale > 0 and added < select('#', ...) / 2 then
    redis.call('HDEL', key, unpack(stale))
  end
end
local NO_STALE, STALE_ERROR, STALE_RESULT, STALE_BOTH = {}, { 'error' }, { 'result' }, { 'result', 'error' }

-- Pass 2: apply them.
for _, b in ipairs(applied) do
  local id, action = ARGV[b], ARGV[b + 1]
  local doc, docTtl, score, target, resultStatus, resultJson, errorText, durationMs
  if action == 'done' then
    action, doc, docTtl, score, target = 'complete', ARGV[b + 2], docTtlCompleted, '', ''
    resultStatus, resultJson, errorText, durationMs = 'completed', ARGV[b + 3], '', ARGV[b + 4]
  else
    doc, docTtl, score, target = ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
    resultStatus, resultJson, errorText, durationMs = ARGV[b + 6], ARGV[b + 7], ARGV[b + 8], ARGV[b + 9]
  end
  if doc ~= '' then
    if docTtl ~= '0' then
      redis.call('SET', jobPrefix .. id, doc, 'EX', docTtl)
    else
      redis.call('SET', jobPrefix .. id, doc)
    end
  end
  if action == 'complete' then
    counts.completed = counts.completed + 1
  elseif action == 'retry' then
    redis.call('ZADD', scheduled, score, id)
    if target ~= '' then bananasWake(target) end
    counts.retried = counts.retried + 1
  elseif action == 'dead' then
    redis.call('LPUSH', dead, id)
    counts.failed = counts.failed + 1
  elseif action == 'release' then
    redis.call('RPUSH', target, id)
    counts.released = counts.released + 1
  end
  if resultStatus ~= '' then
    local resultKey = resultPrefix .. id
    if resultJson ~= '' and errorText ~= '' then
      writeResult(resultKey, NO_STALE, 'status', resultStatus, 'completed_at', completedAt,
        'duration_ms', durationMs, 'result', resultJson, 'error', errorText)
    elseif resultJson ~= '' then
      writeResult(resultKey, STALE_ERROR, 'status', resultStatus, 'completed_at', completedAt,
        'duration_ms', durationMs, 'result', resultJson)
    elseif errorText ~= '' then
      writeResult(resultKey, STALE_RESULT, 'status', resultStatus, 'completed_at', completedAt,
        'duration_ms', durationMs, 'error', errorText)
    else
      writeResult(resultKey, STALE_BOTH, 'status', resultStatus, 'completed_at', completedAt,
        'duration_ms', durationMs)
    end
    redis.call('EXPIRE', resultKey, resultStatus == 'completed' and ttlCompleted or ttlFailed)
    redis.call('PUBLISH', resultPrefix .. 'notify:' .. id, resultStatus)
  end
end

for field, count in pairs(counts) do
  if count > 0 then
    redis.call('HINCRBY', stats, field, count)
    redis.call('HINCRBY', minuteStats, field, count)
  end
end
if counts.completed + counts.retried + counts.failed + counts.released > 0 then
  redis.call('EXPIRE', minuteStats, minuteTtl)
end
return results
