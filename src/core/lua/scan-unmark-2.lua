--[[
  `scan corrupt`: second look for orphans. Reads one page of a list (from the right) or of the scheduled
  set and takes every id on it out of the run's orphan-candidate set: a document whose id is found here
  is referenced after all (it moved between places while the first pass paged). Cheap for ids that are not
  candidates (SREM of a non-member). Writes only the run's temporary key.

  KEYS[1]  the list or sorted set to read
  KEYS[2]  orphan-candidate set of the run (temporary)
  ARGV[1]  'list' or 'zset'
  ARGV[2]  offset: entries already read
  ARGV[3]  page size
  Returns  { entries read, candidates left }
]]
local source, candidates = KEYS[1], KEYS[2]
local kind, offset, size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = bananasPage(source, kind, offset, size)
if #ids > 0 then redis.call('SREM', candidates, unpack(ids)) end
return { #ids, redis.call('SCARD', candidates) }
