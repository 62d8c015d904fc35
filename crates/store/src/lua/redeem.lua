-- Atomic redemption of one catalogue item by one end user (all keys under the tenant's
-- hash tag): refuse when once-per-user and already redeemed, or when out of stock;
-- otherwise take one from stock, mark it redeemed and record the history event.
-- KEYS[1] stock hash   KEYS[2] the user's redeemed set   KEYS[3] history hash (id → event)
-- KEYS[4] history index (all types)   KEYS[5] history index (this type)
-- ARGV[1] item id   ARGV[2] once per user ('1'/'0')   ARGV[3] event id   ARGV[4] event time
-- ARGV[5] event (MessagePack)
-- Returns 'ok', 'already_redeemed' or 'out_of_stock'.
local stock_key, redeemed_key, history_key = KEYS[1], KEYS[2], KEYS[3]
local index_all_key, index_type_key = KEYS[4], KEYS[5]
local item_id, once_per_user = ARGV[1], ARGV[2] == '1'
local event_id, event_at, event_packed = ARGV[3], ARGV[4], ARGV[5]

if once_per_user and redis.call('SISMEMBER', redeemed_key, item_id) == 1 then
  return 'already_redeemed'
end
local stock = redis.call('HGET', stock_key, item_id)
if stock then
  if tonumber(stock) <= 0 then return 'out_of_stock' end
  redis.call('HINCRBY', stock_key, item_id, -1)
end
redis.call('SADD', redeemed_key, item_id)
redis.call('HSET', history_key, event_id, event_packed)
redis.call('ZADD', index_all_key, event_at, event_id)
redis.call('ZADD', index_type_key, event_at, event_id)
return 'ok'
