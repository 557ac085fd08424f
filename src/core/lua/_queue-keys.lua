-- Shared fragment (included by the scripts that route a job by its document).
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
-- default normal list, where the next dequeue dead-letters it with the right reason.
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

-- Leaves one token in a signal list so an idle worker of that route wakes up.
local function bananasWake(signalKey)
  if redis.call('LLEN', signalKey) == 0 then
    redis.call('LPUSH', signalKey, '1')
  end
end
