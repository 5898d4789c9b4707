-- The rotation claim: 0 if the key was rotated already (field 'r', which update() never writes),
-- -1 if 'd' changed since it was read (read again and retry), else sets 'd' and 'r' and returns 1.
-- ARGV[1]: 'd' as read, ARGV[2]: the new 'd', ARGV[3]: the rotation time (epoch seconds).
-- ARGV[4], ARGV[5]: the channel of key changes and the lookup published on it (for the key caches).
if redis.call('HEXISTS', KEYS[1], 'r') == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'd') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'r', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
