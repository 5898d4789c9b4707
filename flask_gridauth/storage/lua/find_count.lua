-- The hot path of an API key with Redis rate limits, in one round trip. ARGV: now (epoch
-- seconds, as written to ``u``), the touch interval, the record type and lookup that are
-- acceptable, the counter-key prefix, the accepted environments (" live test ", or '' for any),
-- then (suffix, window seconds) pairs. A canary, a disabled key or one with an address
-- allowlist is left to the caller. The record is
-- checked as check_record() does; only a usable one is touched and counted, and only when
-- it has no own rate_limit (that one the caller parses and counts). The counter is
-- limits' incr_expire: INCRBY, and EXPIRE on the window's first hit.
-- ARGV[7] is the quota cost: when above 0 and no counter went over its limit (the amount is the
-- first number of the suffix), the record's quota pays it in the same script (spend()), and
-- {allowed, left} follow the counts.
-- Reply: {} (no record) | {d, u} (nothing done) | {d, u, 1} (touched if due) |
-- {d, u, 1, count, pttl, ..., [allowed, left]} (touched if due, counted, quota spent).
-- Loaded after spend_function.lua.
local pair = redis.call('HMGET', KEYS[1], 'd', 'u')
if not pair[1] then return {} end
local ok, rec = pcall(cjson.decode, pair[1])
local now = tonumber(ARGV[1])
if not ok or type(rec) ~= 'table' or rec['type'] ~= ARGV[3] or rec['lookup'] ~= ARGV[4]
    or type(rec['id']) ~= 'string' or rec['revoked_at'] ~= cjson.null
    or (rec['disabled_at'] ~= nil and rec['disabled_at'] ~= cjson.null) or rec['canary'] == true
    or (type(rec['allowed_ips']) == 'table' and #rec['allowed_ips'] > 0)
    or (ARGV[6] ~= '' and not string.find(ARGV[6], ' ' .. tostring(rec['environment']) .. ' ', 1, true)) then
  return {pair[1], pair[2]}
end
local expires = rec['expires_at']
if expires ~= cjson.null and (type(expires) ~= 'number' or expires <= now) then return {pair[1], pair[2]} end
local used = tonumber(pair[2])
if not used or now - used >= tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'u', ARGV[1]) end
local out = {pair[1], pair[2], 1}
local own = rec['rate_limit']
if own ~= cjson.null and own ~= '' then return out end
local base = ARGV[5] .. rec['id']
local over = false
for i = 8, #ARGV - 1, 2 do
  local key = base .. ARGV[i]
  local count = redis.call('INCRBY', key, 1)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i + 1]) end
  local amount = tonumber(string.match(ARGV[i], '^/(%d+)/'))
  if amount and count > amount then over = true end
  out[#out + 1] = count
  out[#out + 1] = redis.call('PTTL', key)
end
local cost = tonumber(ARGV[7])
if cost and cost > 0 and not over and type(rec['quota']) == 'table' then
  local spent = spend(rec['quota'], KEYS[1], now, cost)
  if spent then
    out[#out + 1] = spent[1]
    out[#out + 1] = spent[2]
  end
end
return out
