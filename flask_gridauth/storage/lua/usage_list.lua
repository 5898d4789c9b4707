-- ARGV: usage key prefix, key id, first hour. Reply: hour, then the HGETALL of its hash, per hour.
local p, id = ARGV[1], ARGV[2]
local out = {}
for _, hour in ipairs(redis.call('ZRANGEBYSCORE', p .. 'idx:' .. id, ARGV[3], '+inf')) do
  out[#out + 1] = hour
  out[#out + 1] = redis.call('HGETALL', p .. id .. ':' .. hour)
end
return out
