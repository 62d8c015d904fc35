-- Retention on a conversation's hot history: deletes its entries older than the cut-off,
-- oldest first, stopping at the first younger one (events are recorded in time order)
-- and after `max` (the caller calls again while it returns `max`: no script runs long).
--
-- KEYS[1] history stream   ARGV[1] cut-off, ms   ARGV[2] max entries per call
-- Returns how many it deleted.
local history_key, cutoff, max = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local removed = 0
while removed < max do
  local page = redis.call('XRANGE', history_key, '-', '+', 'COUNT', math.min(200, max - removed))
  if #page == 0 then break end
  for _, entry in ipairs(page) do
    local fields, t = entry[2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 't' then t = tonumber(fields[i + 1]) end
    end
    if not (t and t < cutoff) then return removed end
    redis.call('XDEL', history_key, entry[1])
    removed = removed + 1
  end
end
return removed
