--[[
  Returns jobs whose lease expired (their worker died or froze) to the head of their ready list, so they
  run next. Only ids holding a bananas lease are touched: ids an original worker put in processing
  (no lease) are left to the operator.

  KEYS[1]  processing list
  KEYS[2]  leases sorted set
  KEYS[3]  lease owners hash
  ARGV[1]  key prefix ("bananas:")
  ARGV[2]  now, Unix ms
  ARGV[3]  most jobs to recover in this call
  A lease whose id is no longer in processing is removed without moving anything.
  A job whose ready list holds another kind of value is left as it is (in processing, its lease expired)
  until the list is repaired.
  Returns  a flat array of pairs: id, worker id that held the lease (the ids returned to a queue); a
           WRONGTYPE error, before any write, when processing, the leases or the owners hold another kind
           of value.
]]
local processing, leases, owners = KEYS[1], KEYS[2], KEYS[3]
local prefix, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
local out = {}
local woken = {}
if #expired > 0 then
  local wrong = bananasWrongKind({ processing, 'list', leases, 'zset', owners, 'hash' })
  if wrong then return wrong end
end
for _, id in ipairs(expired) do
  local list, routingKey = bananasRoutedList(prefix, bananasDocument(prefix .. 'job:' .. id))
  if bananasUsable(list, 'list') then
    local previousOwner = redis.call('HGET', owners, id) or ''
    redis.call('ZREM', leases, id)
    redis.call('HDEL', owners, id)
    -- An id someone already took out of processing (an operator, a delete) only loses its stale lease.
    if redis.call('LREM', processing, -1, id) > 0 then
      bananasPushRouted(prefix, id, list, routingKey, 'RPUSH', woken)
      out[#out + 1] = id
      out[#out + 1] = previousOwner
    end
  end
end
return out
