--[[
  `scan corrupt`: reads one page of a list (from its consumer end, the right) or of the scheduled set
  (earliest first) and records every id on it in this run's temporary reference hash. The page is read
  and checked in one step, so what it reports about an id (no document, no lease, an expired lease) was
  true at one instant. Read-only for queue state: it writes only the run's temporary keys.

  KEYS[1]  the list or sorted set to read
  KEYS[2]  reference hash of the run: id -> comma-separated place codes (temporary)
  KEYS[3]  duplicate-candidate set of the run: ids seen in more than one place (temporary)
  KEYS[4]  leases sorted set (id -> deadline, Unix ms)
  KEYS[5]  lease owners hash (id -> worker id)
  ARGV[1]  job key prefix ("<prefix>job:")
  ARGV[2]  'list' or 'zset'
  ARGV[3]  offset: entries already read (from the right of a list; from the lowest score of the set)
  ARGV[4]  page size
  ARGV[5]  place code of KEYS[1] (recorded in the reference hash)
  ARGV[6]  '1' when KEYS[1] is the processing list: report ids without a lease or with an expired one
  ARGV[7]  now, Unix ms
  ARGV[8]  TTL of the temporary keys, seconds (refreshed on every call)
  Returns  { entries read,
             { ids on the page whose document is missing },
             { flat triples for processing ids with a lease problem: id, deadline ms or '', owner or '' } }
]]
local source, refs, dups, leases, owners = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local jobPrefix, kind = ARGV[1], ARGV[2]
local offset, size = tonumber(ARGV[3]), tonumber(ARGV[4])
local code, checkLeases, now, ttl = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8]

local ids = bananasPage(source, kind, offset, size)

local missing = {}
local leaseProblems = {}
for _, id in ipairs(ids) do
  local previous = redis.call('HGET', refs, id)
  if previous then
    redis.call('HSET', refs, id, previous .. ',' .. code)
    redis.call('SADD', dups, id)
  else
    redis.call('HSET', refs, id, code)
  end
  if redis.call('EXISTS', jobPrefix .. id) == 0 then missing[#missing + 1] = id end
  if checkLeases then
    local deadline = redis.call('ZSCORE', leases, id)
    if not deadline or tonumber(deadline) <= now then
      leaseProblems[#leaseProblems + 1] = id
      leaseProblems[#leaseProblems + 1] = deadline or ''
      leaseProblems[#leaseProblems + 1] = redis.call('HGET', owners, id) or ''
    end
  end
end
if #ids > 0 then
  redis.call('EXPIRE', refs, ttl)
  if redis.call('EXISTS', dups) == 1 then redis.call('EXPIRE', dups, ttl) end
end
return { #ids, missing, leaseProblems }
