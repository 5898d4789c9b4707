local ids
if ARGV[2] == '' then
  ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
else
  ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'LIMIT', 0, tonumber(ARGV[3]))
end
local out = {}
for i, id in ipairs(ids) do
  local lookup = redis.call('GET', ARGV[1] .. ':id:' .. id)
  if lookup then out[#out + 1] = redis.call('HMGET', ARGV[1] .. ':rec:' .. lookup, 'd', 'u', 'q', 'qt') end
end
return out
