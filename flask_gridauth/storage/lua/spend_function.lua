-- spend(quota, key, now, cost) takes cost units of the record's quota, refilled lazily first, as
-- records.refilled() and the SQL of the SQLite backend do. Returns {1, left} or {0, left}.
-- Loaded after a generated line `local REFILL_SECONDS = {...}` (see redis_scripts.py).
local function spend(quota, key, now, cost)
  local state = redis.call('HMGET', key, 'q', 'qt')
  local left, at = tonumber(state[1]), tonumber(state[2])
  if not left or not at then return nil end
  local seconds = REFILL_SECONDS[quota['refill_interval']]
  local amount = tonumber(quota['refill_amount'])
  if seconds and amount and amount > 0 then
    local periods = math.floor((now - at) / seconds)
    if periods > 0 then
      left = math.min(tonumber(quota['limit']), left + periods * amount)
      at = at + periods * seconds
    end
  end
  local allowed = 0
  if left >= cost then left = left - cost; allowed = 1 end
  redis.call('HSET', key, 'q', left, 'qt', string.format('%.6f', at))
  return {allowed, left}
end
