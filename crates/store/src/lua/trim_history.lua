-- Retention on a conversation's hot history: deletes its entries older than the cut-off,
-- oldest first, stopping at the first younger one (events are recorded in time order)
-- and after `max` (the caller calls again while it returns `max`: no script runs long).
--
-- Once the stream is done, the amended messages older than the cut-off go from the
-- conversation's `amended` hash too (the current forms of edited or removed messages,
-- ownership crate's apply.lua), with their lists of edits.
--
-- KEYS[1] history stream   KEYS[2] the amended hash   ARGV[1] cut-off, ms
-- ARGV[2] max entries per call
-- Returns how many it deleted.
local history_key, amended_key = KEYS[1], KEYS[2]
local cutoff, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local removed = 0

-- The amended forms older than the cut-off (few: one per amended message).
local function trim_amended()
  local fields = redis.call('HGETALL', amended_key)
  for i = 1, #fields, 2 do
    local seq = fields[i]
    if string.match(seq, '^%d+$') then
      local ok, event = pcall(cmsgpack.unpack, fields[i + 1])
      if ok and type(event) == 'table' and tonumber(event.at) and tonumber(event.at) < cutoff then
        redis.call('HDEL', amended_key, seq, 'e:' .. seq)
        removed = removed + 1
      end
    end
  end
end

while removed < max do
  local page = redis.call('XRANGE', history_key, '-', '+', 'COUNT', math.min(200, max - removed))
  if #page == 0 then
    trim_amended()
    break
  end
  for _, entry in ipairs(page) do
    local fields, t = entry[2], nil
    for i = 1, #fields, 2 do
      if fields[i] == 't' then t = tonumber(fields[i + 1]) end
    end
    if not (t and t < cutoff) then
      trim_amended()
      return removed
    end
    redis.call('XDEL', history_key, entry[1])
    removed = removed + 1
  end
end
return removed
