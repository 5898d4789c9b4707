-- ARGV: usage key prefix, then per bucket: key id, hour, allowed, forbidden, rate-limited, the number of
-- scopes, then (scope, count) pairs. Adds to the hashes and indexes them, all at once.
local p, i = ARGV[1], 2
while i <= #ARGV do
  local id, hour = ARGV[i], ARGV[i + 1]
  local bucket = p .. id .. ':' .. hour
  redis.call('HINCRBY', bucket, 'a', ARGV[i + 2])
  redis.call('HINCRBY', bucket, 'f', ARGV[i + 3])
  redis.call('HINCRBY', bucket, 'r', ARGV[i + 4])
  local n = tonumber(ARGV[i + 5])
  for j = 0, n - 1 do
    redis.call('HINCRBY', bucket, 's:' .. ARGV[i + 6 + 2 * j], ARGV[i + 7 + 2 * j])
  end
  redis.call('ZADD', p .. 'idx:' .. id, hour, hour)
  redis.call('ZADD', p .. 'hours', hour, hour .. ':' .. id)
  i = i + 6 + 2 * n
end
return 1
