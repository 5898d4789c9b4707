-- The record's quota pays ARGV[2] units at ARGV[1] (epoch seconds); loaded after spend_function.lua.
local d = redis.call('HGET', KEYS[1], 'd')
if not d then return {} end
local rec = cjson.decode(d)
if type(rec['quota']) ~= 'table' then return {} end
return spend(rec['quota'], KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])) or {}
