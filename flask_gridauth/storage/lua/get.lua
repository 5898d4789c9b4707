local lookup = redis.call('GET', KEYS[1])
if not lookup then return {} end
return redis.call('HMGET', ARGV[1] .. ':rec:' .. lookup, 'd', 'u', 'q', 'qt')
