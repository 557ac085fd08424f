--[[
  `scan corrupt`: the PTTL of each of a batch of job document keys, in one call (PTTL has no multi-key
  form; one script costs far less than a thousand pipelined commands on the client). Read-only.

  KEYS[1]  the first job document key of the batch (declared so that Redis Cluster runs the script on the
           node holding the batch: with a hash-tagged prefix every key of the batch is in its slot)
  ARGV[1..] job document keys
  Returns  their PTTLs, in order (-2: no such key, -1: no TTL)
]]
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('PTTL', ARGV[i])
end
return out
