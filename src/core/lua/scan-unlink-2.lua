--[[
  `scan corrupt --repair`: removes a reference to an id whose job document does not exist (a dangling
  reference: no worker can run it). Re-checked here, at repair time: nothing is removed when the
  document exists again, or (processing list) when a lease now covers the id.

  KEYS[1]  the list or sorted set holding the dangling id
  KEYS[2]  leases sorted set
  ARGV[1]  the id's job document key
  ARGV[2]  id
  ARGV[3]  'list', 'zset' or 'processing' (a list; also requires that the id has no lease)
  Returns  the number of references removed (0: the state changed; nothing was done)
]]
local source, leases = KEYS[1], KEYS[2]
local jobKey, id, kind = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', jobKey) == 1 then return 0 end
if kind == 'zset' then return redis.call('ZREM', source, id) end
if kind == 'processing' and redis.call('ZSCORE', leases, id) then return 0 end
return redis.call('LREM', source, 0, id)
