-- KEYS[1]: the global hour index. ARGV: usage key prefix, cutoff hour, limit. Members are "<hour>:<id>".
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(members) do
  local sep = string.find(member, ':', 1, true)
  local hour, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  redis.call('DEL', ARGV[1] .. id .. ':' .. hour)
  redis.call('ZREM', ARGV[1] .. 'idx:' .. id, hour)
  redis.call('ZREM', KEYS[1], member)
end
return #members
