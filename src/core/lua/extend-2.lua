--[[
  Extends the leases a worker still holds.

  KEYS[1]  leases sorted set
  KEYS[2]  lease owners hash
  ARGV[1]  worker id
  ARGV[2]  new deadline, Unix ms
  ARGV[3..] ids
  Returns  the ids whose lease the worker no longer holds.
]]
local leases, owners = KEYS[1], KEYS[2]
local owner, deadline = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', owners, id) == owner then
    redis.call('ZADD', leases, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
