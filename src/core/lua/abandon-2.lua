--[[
  Marks leases a worker holds but no longer tracks as expired, so the next recovery sweep returns those
  jobs to their queue at once. This happens when a dequeue ran on the server but its reply was lost in a
  connection drop: the ids sit in processing under the worker's lease without the worker knowing them.

  KEYS[1]  leases sorted set
  KEYS[2]  lease owners hash
  ARGV[1]  worker id
  ARGV[2..] ids the worker does NOT hold (candidates)
  Returns  the ids whose lease was expired (still owned by the worker).
]]
local leases, owners = KEYS[1], KEYS[2]
local owner = ARGV[1]
local expired = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', owners, id) == owner then
    redis.call('ZADD', leases, 'XX', 0, id)
    expired[#expired + 1] = id
  end
end
return expired
