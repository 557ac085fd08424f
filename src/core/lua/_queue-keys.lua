-- Shared fragment: the functions more than one script needs. Each script is given the definitions it uses
-- (src/core/scripts.ts), so every top-level statement here is one `local` definition (with `--` comment
-- lines above it) whose name starts with `bananas` or `BANANAS_`: it cannot clash with a script's own
-- locals, and a script's use of it can be found.

-- Mirrors src/core/keys.ts: the ready list and the wake-up signal of a priority and routing key.
local function bananasReadyList(prefix, priority, routingKey)
  if priority ~= 'high' and priority ~= 'low' then priority = 'normal' end
  if routingKey == nil or routingKey == '' or routingKey == 'default' then
    return prefix .. 'queue:' .. priority
  end
  return prefix .. 'route:' .. routingKey .. ':queue:' .. priority
end

local function bananasSignal(prefix, routingKey)
  if routingKey == nil or routingKey == '' or routingKey == 'default' then
    return prefix .. 'signal'
  end
  return prefix .. 'route:' .. routingKey .. ':signal'
end

-- Reads priority and routing key from a document; a missing or unreadable document routes to the
-- default normal list, where the next dequeue dead-letters it.
local function bananasRouteOf(doc)
  if not doc then return 'normal', '' end
  local ok, decoded = pcall(cjson.decode, doc)
  if not ok or type(decoded) ~= 'table' then return 'normal', '' end
  local priority, routingKey = decoded['priority'], decoded['routing_key']
  if type(priority) ~= 'string' then priority = 'normal' end
  if type(routingKey) ~= 'string' or not string.match(routingKey, '^[%w_%-]+$') or #routingKey > 64 then
    routingKey = ''
  end
  return priority, routingKey
end

-- Redis does not roll back a script that fails half way: a write to a key holding another kind of value
-- (WRONGTYPE) after an id was removed from somewhere would lose that id. So scripts check, before their
-- first write, that every key they will write holds the right kind of value or nothing. The check is a
-- read of that kind (LLEN, ZSCORE, HEXISTS: commands the scripts run anyway, so a user allowed to run the
-- scripts may run the checks); TYPE only names what a key holds, where the user may run it.

-- Whether `reply` (of redis.pcall) is a WRONGTYPE error.
local function bananasIsWrongType(reply)
  return type(reply) == 'table' and type(reply['err']) == 'string'
    and string.find(reply['err'], 'WRONGTYPE', 1, true) ~= nil
end

local bananasProbes = {
  list = function(key) return redis.pcall('LLEN', key) end,
  zset = function(key) return redis.pcall('ZSCORE', key, '') end,
  hash = function(key) return redis.pcall('HEXISTS', key, '') end,
}
local bananasProbed = { list = {}, zset = {}, hash = {} }

-- Whether `key` can take a write of `kind` ('list', 'zset', 'hash'): it holds that kind or nothing. Read
-- once per key and kind per script run (the script's own writes never change a key to another kind).
local function bananasUsable(key, kind)
  local known = bananasProbed[kind]
  local usable = known[key]
  if usable == nil then
    usable = not bananasIsWrongType(bananasProbes[kind](key))
    known[key] = usable
  end
  return usable
end

-- What `key` holds as TYPE names it ('string', 'hash', …), or 'unknown' where the user may not run TYPE.
local function bananasKindOf(key)
  local reply = redis.pcall('TYPE', key)
  if type(reply) == 'table' and type(reply['ok']) == 'string' then return reply['ok'] end
  return 'unknown'
end

-- `wanted` is key, kind, key, kind, …: nil when every key is usable (bananasUsable), otherwise an error
-- reply naming the first that is not. Callers return it before their first write.
local function bananasWrongKind(wanted)
  for i = 1, #wanted, 2 do
    local key, kind = wanted[i], wanted[i + 1]
    if not bananasUsable(key, kind) then
      local holds = bananasKindOf(key)
      holds = holds == 'unknown' and 'another kind of value' or 'a ' .. holds
      return redis.error_reply('WRONGTYPE ' .. key .. ' holds ' .. holds .. ', not a ' .. kind ..
        '; nothing was changed')
    end
  end
  return nil
end

-- Leaves one token in a signal list so an idle worker of that route wakes up. A wake-up only shortens a
-- wait (idle workers look again every poll interval): a signal key holding another kind of value is left
-- alone instead of failing the script after its other writes.
local function bananasWake(signalKey)
  if redis.pcall('LLEN', signalKey) == 0 then
    redis.call('LPUSH', signalKey, '1')
  end
end

-- bananasWake, once per script run for each signal list: `woken` remembers the ones already woken.
local function bananasWakeOnce(signalKey, woken)
  if not woken[signalKey] then
    woken[signalKey] = true
    bananasWake(signalKey)
  end
end

-- The document of a job (false when there is none); a job key holding another kind of value reads as no
-- document (it routes to the default normal list, where the next dequeue dead-letters the id).
local function bananasDocument(jobKey)
  local doc = redis.pcall('GET', jobKey)
  if type(doc) == 'table' then return false end
  return doc
end

-- The ready list the document `doc` routes to (bananasRouteOf), and its routing key.
local function bananasRoutedList(prefix, doc)
  local priority, routingKey = bananasRouteOf(doc)
  return bananasReadyList(prefix, priority, routingKey), routingKey
end

-- Pushes `id` on `list` (from bananasRoutedList, with its `routingKey`) with `push` ('LPUSH': after the
-- jobs waiting; 'RPUSH': it runs next) and wakes that route's idle workers (bananasWakeOnce). Returns the
-- list. Callers check first that the list is usable (bananasUsable).
local function bananasPushRouted(prefix, id, list, routingKey, push, woken)
  redis.call(push, list, id)
  bananasWakeOnce(bananasSignal(prefix, routingKey), woken)
  return list
end

-- Whether `doc` (a GET reply, false when there is no document) is the document a caller read: the
-- SHA-1 (hex) of its bytes is `sha`, or, when `sha` is '', there is still no document.
local function bananasIsDocument(doc, sha)
  if sha == '' then return not doc end
  return doc and redis.sha1hex(doc) == sha
end

-- One page of ids: from a list's consumer end (the right), or from a sorted set's lowest score,
-- `offset` entries in ('list' or 'zset' is `kind`).
local function bananasPage(source, kind, offset, size)
  if kind == 'zset' then
    return redis.call('ZRANGE', source, offset, offset + size - 1)
  end
  return redis.call('LRANGE', source, -(offset + size), -(offset + 1))
end

local BANANAS_CHUNK = 500

-- Calls `command key a1 a2 …` (`command a1 a2 …` when key is nil) over `list` in chunks: unpack has a
-- stack limit.
local function bananasVariadic(command, key, list)
  for from = 1, #list, BANANAS_CHUNK do
    local to = math.min(from + BANANAS_CHUNK - 1, #list)
    if key then
      redis.call(command, key, unpack(list, from, to))
    else
      redis.call(command, unpack(list, from, to))
    end
  end
end

-- The values of `keys` in order (false where there is none), read in chunks of MGET.
local function bananasMget(keys)
  local values = {}
  for from = 1, #keys, BANANAS_CHUNK do
    local part = redis.call('MGET', unpack(keys, from, math.min(from + BANANAS_CHUNK - 1, #keys)))
    for j = 1, #part do values[from + j - 1] = part[j] end
  end
  return values
end

-- The values of `fields` of hash `key` in order (false where there is none), read with HMGET in chunks,
-- or with one HGET per field where HMGET fails (a user without it: the worker ACL of earlier releases).
local function bananasHmget(key, fields)
  local values = {}
  for from = 1, #fields, BANANAS_CHUNK do
    local to = math.min(from + BANANAS_CHUNK - 1, #fields)
    local part = redis.pcall('HMGET', key, unpack(fields, from, to))
    if type(part) == 'table' and part['err'] then
      -- Not allowed (the wording of that error differs between Redis versions): HGET says why if it
      -- fails too.
      for j = from, to do values[j] = redis.call('HGET', key, fields[j]) end
    else
      for j = 1, #part do values[from + j - 1] = part[j] end
    end
  end
  return values
end

-- Removing a batch of entries from a list by position (dlq-requeue-1.lua, dlq-clear-1.lua), step 1.
-- `hints`: where each entry is expected, as a negative index from the tail (0 = unknown). Returns a
-- function (id, hint) -> the entry's position now (a negative index) or false. One LRANGE checks every
-- expected position at once; an id that moved is looked for among the entries nearest the tail (LPOS RANK
-- -1 MAXLEN, `slack` entries beyond its hint), an id without a hint in the whole list.
local function bananasLocator(list, hints, slack)
  local low, high = 0, nil
  for i = 1, #hints do
    local hint = hints[i]
    if hint < 0 then
      if hint < low then low = hint end
      if not high or hint > high then high = hint end
    end
  end
  local window = {}
  if high then
    -- A list shorter than expected (others removed entries) would shift the window: clamp it.
    local length = redis.call('LLEN', list)
    if low < -length then low = -length end
    if high >= low then window = redis.call('LRANGE', list, low, high) end
  end
  return function(id, hint)
    if hint < 0 and hint >= low and window[hint - low + 1] == id then return hint end
    if hint < 0 then return redis.call('LPOS', list, id, 'RANK', -1, 'MAXLEN', slack - hint) end
    return redis.call('LPOS', list, id, 'RANK', -1)
  end
end

-- Step 2: removes the entries found at `positions` (negative indexes, in the order found). One
-- contiguous block -(kept+1) … -(kept+n) near the tail (at most `slack` entries after it) is cut out with
-- LTRIM, the `kept` entries after it put back as they were; anything else is overwritten with the
-- tombstone `tomb` (LSET) and all tombstones go with one LREM. So a sweep that leaves many entries at the
-- tail costs O(depth) per batch, never an LREM rescanning them for every id.
local function bananasRemoveAt(list, positions, slack, tomb)
  local n = #positions
  if n == 0 then return end
  local kept = -positions[1] - 1
  local contiguous = kept >= 0 and kept <= slack
  for k = 1, n do
    if positions[k] ~= -(kept + k) then contiguous = false end
  end
  if contiguous then
    local after = {}
    if kept > 0 then after = redis.call('LRANGE', list, -kept, -1) end
    redis.call('LTRIM', list, 0, -(kept + n + 1))
    if kept > 0 then bananasVariadic('RPUSH', list, after) end
  else
    for k = 1, n do redis.call('LSET', list, positions[k], tomb) end
    redis.call('LREM', list, -n, tomb)
  end
end

-- The places of one job (job-rewrite-6.lua, job-delete-7.lua): `places` holds the keys `ready` (a table
-- of ready lists), `processing`, `dead`, `scheduled`, `leases` and `owners`.

-- Where `id` is: one character per place ('1' present, '0' absent), in the order each ready list,
-- processing, dead, scheduled, leases, lease owners (a table of characters: callers may append).
local function bananasPresence(id, places)
  local function inList(key)
    return redis.call('LPOS', key, id) and '1' or '0'
  end
  local presence = {}
  for i = 1, #places.ready do presence[#presence + 1] = inList(places.ready[i]) end
  presence[#presence + 1] = inList(places.processing)
  presence[#presence + 1] = inList(places.dead)
  presence[#presence + 1] = redis.call('ZSCORE', places.scheduled, id) and '1' or '0'
  presence[#presence + 1] = redis.call('ZSCORE', places.leases, id) and '1' or '0'
  presence[#presence + 1] = redis.call('HEXISTS', places.owners, id) == 1 and '1' or '0'
  return presence
end

-- Appends `key, count` to the flat reply `out` when `count` things were removed from `key`.
local function bananasCountRemoved(out, key, count)
  if count > 0 then
    out[#out + 1] = key
    out[#out + 1] = count
  end
end

-- Removes every reference to `id`: all its occurrences in each ready list, processing and dead, its
-- scheduled entry, its lease and lease owner (which discards the settlement of a worker still running
-- it). What was removed is appended to `out` (bananasCountRemoved).
local function bananasUnreference(out, id, places)
  for i = 1, #places.ready do
    bananasCountRemoved(out, places.ready[i], redis.call('LREM', places.ready[i], 0, id))
  end
  bananasCountRemoved(out, places.processing, redis.call('LREM', places.processing, 0, id))
  bananasCountRemoved(out, places.dead, redis.call('LREM', places.dead, 0, id))
  bananasCountRemoved(out, places.scheduled, redis.call('ZREM', places.scheduled, id))
  bananasCountRemoved(out, places.leases, redis.call('ZREM', places.leases, id))
  bananasCountRemoved(out, places.owners, redis.call('HDEL', places.owners, id))
end
