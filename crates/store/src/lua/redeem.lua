-- Atomic redemption of one catalogue item by one end user (all keys under the tenant's
-- hash tag): refuse when once-per-user and already redeemed, or when out of stock;
-- otherwise take one from stock, mark it redeemed and record the history event.
-- KEYS[1] stock hash   KEYS[2] the user's redeemed set   KEYS[3] history hash (id → event)
-- KEYS[4] history index (all types)   KEYS[5] history index (this type)
-- ARGV[1] item id   ARGV[2] once per user ('1'/'0')   ARGV[3] event id   ARGV[4] event time
-- ARGV[5] event (MessagePack)
-- Returns 'ok', 'already_redeemed' or 'out_of_stock'.
if ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return 'already_redeemed'
end
local stock = redis.call('HGET', KEYS[1], ARGV[1])
if stock then
  if tonumber(stock) <= 0 then return 'out_of_stock' end
  redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
return 'ok'
